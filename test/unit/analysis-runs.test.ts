/**
 * The run-level noise model (docs/verdicts.md "Run-to-run noise") on seeded synthetic runs with a between-run
 * component: every run (one server process) gets a factor shared by all its trials, which its trials cannot show.
 */
import { describe, expect, it } from "vitest";
import type { Baseline } from "../../src/analysis/baseline.js";
import { compareTests, type Runs } from "../../src/analysis/compare.js";
import { type PolicyInput, RUN_NOISE_DEFAULTS, resolvePolicy } from "../../src/analysis/policy.js";
import { bootstrapMedianRatio, seededRandom } from "../../src/analysis/stats.js";
import { applyConfirmation, judge, summarize } from "../../src/analysis/verdict.js";
import type { Results, Verdict } from "../../src/measure/results.js";
import { type SyntheticOptions, syntheticRun } from "./analysis-fixtures.js";

const CPU = { gpus: [] };
// These tests hold the stored-baseline statistics to what issue 5 validated, when an inconclusive change warned; the
// default now passes it (saying "inconclusive" and what the gate could have caught: docs/verdicts.md "Inconclusive").
const INCONCLUSIVE_WARNS = { inconclusive: "warn" } as const;

type RunOptions = Omit<SyntheticOptions, "seed">;

/** Judges a candidate run against `base`, and confirms a fail with a second candidate run as the pipeline does. */
function gate(
  base: Runs,
  first: Results,
  rerun: Results,
  policyInput: PolicyInput,
): { first: Verdict; final: Verdict } {
  const policy = resolvePolicy({ ...INCONCLUSIVE_WARNS, ...policyInput, bootstrapResamples: 100 });
  const judgeRuns = (cand: Runs) => summarize(compareTests(base, cand, policy, { perRequest: false }));
  const v = judgeRuns(first);
  if (v.overall !== "fail") return { first: v, final: v };
  const final = applyConfirmation(v, judgeRuns([first, rerun]), policy, { runs: 2, rerunAlone: judgeRuns(rerun) });
  return { first: v, final };
}

/** Rates over `n` seeded comparisons of `runs`-run baselines against fresh candidate runs. */
function rates(n: number, runs: number, o: RunOptions, policy: PolicyInput = {}) {
  let fail = 0;
  let failConfirmed = 0;
  let warn = 0;
  for (let i = 0; i < n; i++) {
    const base = Array.from({ length: runs }, (_, j) => syntheticRun({ ...o, seed: 1000 * i + j, slowdown: 0 }));
    const first = syntheticRun({ ...o, seed: 1000 * i + 500 });
    const rerun = syntheticRun({ ...o, seed: 1000 * i + 501 });
    const r = gate(base, first, rerun, policy);
    if (r.first.overall === "fail") fail++;
    if (r.final.overall === "fail") failConfirmed++;
    if (r.final.overall === "warn") warn++;
  }
  return { fail: fail / n, failConfirmed: failConfirmed / n, warn: warn / n };
}

function asBaseline(runs: Results[]): Baseline & { file: string } {
  return {
    baselineVersion: 1,
    name: "ci",
    createdAt: "2026-11-29T00:00:00Z",
    source: {},
    results: runs[0]!,
    ...(runs.length > 1 ? { moreRuns: runs.slice(1) } : {}),
    file: "baselines/ci.json",
  };
}

// The incident: runs differ by a run effect of 10% (sd) while the trials of one run agree within 3%.
const NOISY_RUNS: RunOptions = { trials: 5, noise: 0.03, runEffect: 0.1 };

describe("A/A across separate runs", () => {
  it("trials alone (no run-to-run noise) fail A/A runs often: the incident", () => {
    const r = rates(200, 1, NOISY_RUNS, { runNoise: 0, runNoiseDf: 0 });
    expect(r.fail).toBeGreaterThan(0.25);
    // A rerun does not rescue it: about one in ten A/A comparisons still fails.
    expect(r.failConfirmed).toBeGreaterThan(0.05);
  });

  it("a 3-run baseline passes A/A runs at the target rate (CPU default run noise)", () => {
    const r = rates(200, 3, { ...NOISY_RUNS, env: CPU });
    expect(r.failConfirmed).toBeLessThanOrEqual(0.01);
    // Passing is not silence: changes that look like regressions but sit in the noise warn.
    expect(r.warn).toBeGreaterThan(0.2);
  });

  it("a 3-run baseline passes A/A runs at the target rate when runNoise is set to the machine's", () => {
    const r = rates(200, 3, NOISY_RUNS, { runNoise: 0.1 });
    expect(r.failConfirmed).toBeLessThanOrEqual(0.01);
  });

  it("an assumed noise below the machine's costs false fails, which the confirmation rerun mostly catches", () => {
    // An assumed 5% on a machine with 10% run effects: the price of an optimistic assumption.
    const r = rates(200, 3, NOISY_RUNS, { runNoise: 0.05 });
    expect(r.fail).toBeGreaterThan(r.failConfirmed);
    expect(r.failConfirmed).toBeLessThanOrEqual(0.05);
  });
});

describe("detection with multi-run baselines", () => {
  const QUIET: RunOptions = { trials: 5, noise: 0.03, runEffect: 0.01, slowdown: 0.15 };

  it("a 15% shift fails against a 3-run baseline when runNoise is the machine's (measured with tokengate validate)", () => {
    const r = rates(100, 3, QUIET, { runNoise: 0.02 });
    expect(r.failConfirmed).toBeGreaterThanOrEqual(0.95);
  });

  it("a 15% shift fails against a 5-run baseline with the default assumption", () => {
    const r = rates(100, 5, QUIET);
    expect(r.failConfirmed).toBeGreaterThanOrEqual(0.75);
    expect(r.failConfirmed + r.warn).toBe(1);
  });

  it("with 3 runs and the default assumption, a 15% shift is never a silent pass", () => {
    const r = rates(100, 3, QUIET);
    expect(r.failConfirmed).toBeGreaterThan(0.2);
    expect(r.failConfirmed + r.warn).toBe(1);
  });

  it("within 10% run effects, a 15% shift of one candidate run is inconclusive, and says why", () => {
    // The difference of one candidate run from 3 baseline runs has an sd of about 11.5% here: a 15% change is 1.3 sd.
    const runs = Array.from({ length: 3 }, (_, j) => syntheticRun({ ...NOISY_RUNS, env: CPU, seed: 40 + j }));
    const slow = syntheticRun({ ...NOISY_RUNS, env: CPU, seed: 50, slowdown: 0.15 });
    const v = judge({ results: slow, baseline: asBaseline(runs), policy: INCONCLUSIVE_WARNS });
    expect(v.overall).toBe("warn");
    const inconclusive = v.checks.filter((c) => c.comparison?.inconclusive);
    expect(inconclusive.length).toBeGreaterThan(0);
    expect(inconclusive[0]!.reason).toMatch(
      /inconclusive: within run-to-run noise [\d.]+% \(3 vs 1 runs, 15 vs 5 trials, p=[\d.]+ Holm, needs <= 0\.05\); add baseline runs/,
    );
  });
});

describe("single-run baselines", () => {
  const base = syntheticRun({ seed: 1, trials: 5, noise: 0.02 });

  it("use the assumed run noise and say so, with how to add runs", () => {
    const slow = syntheticRun({ seed: 2, trials: 5, noise: 0.02, slowdown: 0.15 });
    const v = judge({ results: slow, baseline: asBaseline([base]), policy: INCONCLUSIVE_WARNS });
    expect(v.overall).toBe("warn");
    const note = `single-run baseline: run-to-run noise assumed ${RUN_NOISE_DEFAULTS.gpu * 100}%; add runs with baseline update --from run1.json --from run2.json`;
    expect(v.checks.at(-1)!.reason).toBe(note);
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p95")!;
    expect(ttft.verdict).toBe("warn");
    expect(ttft.reason).toMatch(/inconclusive: within assumed run-to-run noise 3% \(5 vs 5 trials, p=[\d.]+ Holm/);
    expect(ttft.reason.endsWith(`; ${note}`)).toBe(true);
  });

  it("the assumption follows the policy, and the machine: no GPU assumes more", () => {
    const slow = syntheticRun({ seed: 2, trials: 5, noise: 0.02, slowdown: 0.15 });
    const set = judge({
      results: slow,
      baseline: asBaseline([base]),
      policy: { ...INCONCLUSIVE_WARNS, runNoise: 0.02 },
    });
    expect(set.checks.at(-1)!.reason).toMatch(/^single-run baseline: run-to-run noise assumed 2%;/);
    const cpuBase = syntheticRun({ seed: 1, trials: 5, noise: 0.02, env: CPU });
    const cpuSlow = syntheticRun({ seed: 2, trials: 5, noise: 0.02, env: CPU, slowdown: 0.15 });
    const cpu = judge({ results: cpuSlow, baseline: asBaseline([cpuBase]), policy: INCONCLUSIVE_WARNS });
    expect(cpu.checks.at(-1)!.reason).toMatch(/^single-run baseline: run-to-run noise assumed 30%;/);
  });

  it("still fail a gross regression", () => {
    const twice = syntheticRun({ seed: 2, trials: 5, noise: 0.02, slowdown: 1 });
    const v = judge({ results: twice, baseline: asBaseline([base]), policy: INCONCLUSIVE_WARNS });
    expect(v.overall).toBe("fail");
    expect(v.checks.find((c) => c.verdict === "fail")!.reason).toMatch(
      /above fail 10% \(5 vs 5 trials, p=[\d.]+ Holm\); single-run baseline: run-to-run noise assumed 3%/,
    );
  });
});

describe("run-level evidence in reasons", () => {
  it("a multi-run baseline reports its measured run-to-run noise, and the interval carries it", () => {
    const runs = Array.from({ length: 4 }, (_, j) => syntheticRun({ ...NOISY_RUNS, seed: 60 + j }));
    const cand = syntheticRun({ ...NOISY_RUNS, seed: 70, slowdown: 0.3 });
    const v = judge({ results: cand, baseline: asBaseline(runs), policy: INCONCLUSIVE_WARNS });
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p50")!;
    const width = ttft.comparison!.ciHigh! - ttft.comparison!.ciLow!;
    // The plain bootstrap of trials (each trial an independent sample) gives a narrow interval; runs 10% apart widen it.
    const trials = (r: Results) => r.tests[0]!.metrics.ttft_ms!.trials.map((t) => t.p50);
    const plain = bootstrapMedianRatio(runs.flatMap(trials), trials(cand), {
      resamples: 2000,
      level: 0.95,
      random: seededRandom(1),
    });
    expect(width).toBeGreaterThan(1.5 * (plain.high - plain.low));
    expect(ttft.verdict).not.toBe("pass");
    expect(ttft.reason).toMatch(
      /run-to-run noise [\d.]+%.*4 vs 1 runs, 20 vs 5 trials|4 vs 1 runs, 20 vs 5 trials, run-to-run noise [\d.]+%/,
    );
    expect(v.checks.some((c) => c.reason.startsWith("single-run baseline"))).toBe(false);
  });
});

describe("busy machines", () => {
  const base = syntheticRun({ seed: 1, trials: 5, noise: 0.02 });
  const busy = (r: Results, otherShare: number, cpus = 2): Results => ({
    ...r,
    tests: r.tests.map((t) => ({
      ...t,
      machine: {
        cpus,
        wallS: 10,
        ownShare: 0.4,
        otherShare,
        stealShare: 0,
        otherShareMax: otherShare,
        loadavg1: [1, 2],
      },
    })),
  });

  it("a run slowed while other work used more than busyMachine of the CPUs warns instead of failing, and says so", () => {
    const twice = syntheticRun({ seed: 2, trials: 5, noise: 0.02, slowdown: 1 });
    expect(judge({ results: busy(twice, 0.2), baseline: asBaseline([base]) }).overall).toBe("fail");
    const v = judge({ results: busy(twice, 0.55), baseline: asBaseline([base]) });
    expect(v.overall).toBe("warn");
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p50")!;
    expect(ttft.verdict).toBe("warn");
    expect(ttft.comparison!.inconclusive).toBe(true);
    expect(ttft.reason).toMatch(
      /above fail 10% .*; not judged a fail: other work used 55% of 2 CPUs \(1\.1 CPUs\) during this run, above busyMachine 25%; rerun on a quiet runner$/,
    );
    // Off at 1: the same run fails.
    expect(
      judge({ results: busy(twice, 0.55), baseline: asBaseline([base]), policy: { busyMachine: 1 } }).overall,
    ).toBe("fail");
  });

  it("names the busy run among several candidate runs, and a quiet run is judged as before", () => {
    const slow = syntheticRun({ seed: 2, trials: 5, noise: 0.02, slowdown: 1 });
    const slow2 = syntheticRun({ seed: 3, trials: 5, noise: 0.02, slowdown: 1 });
    const checks = compareTests([base], [slow, busy(slow2, 0.4, 16)], resolvePolicy());
    const failing = checks.filter((c) => c.metric !== "*");
    expect(failing.some((c) => c.verdict === "fail")).toBe(false);
    expect(failing.find((c) => c.metric === "e2e_ms.p50")!.reason).toContain(
      "other work used 40% of 16 CPUs (6.4 CPUs) during this run (candidate run 2 of 2)",
    );
    const quiet = compareTests([busy(base, 0.9)], [busy(slow, 0.1)], resolvePolicy());
    expect(quiet.some((c) => c.verdict === "fail")).toBe(true);
  });

  it("refuses a busyMachine that is not a fraction, with an example", () => {
    expect(() => resolvePolicy({ busyMachine: 2 })).toThrow(
      expect.objectContaining({
        subject: "policy.busyMachine",
        message: "must be a fraction between 0 and 1, got 2",
        hint: "use a fraction or a percent, e.g. 0.25 (25%; 1 turns the guard off)",
      }),
    );
  });
});
