import { describe, expect, it } from "vitest";
import type { Baseline } from "../../src/analysis/baseline.js";
import { compareTests } from "../../src/analysis/compare.js";
import { confirmVerdict, decideVerdict } from "../../src/analysis/decide.js";
import { policyFromBlock, resolvePolicy } from "../../src/analysis/policy.js";
import { applyConfirmation, compareResults, judge, planConfirmation } from "../../src/analysis/verdict.js";
import { validateSuite } from "../../src/config/suite-loader.js";
import type { Check, Results } from "../../src/measure/results.js";
import { BadInputError } from "../../src/util/errors.js";
import { syntheticRun } from "./analysis-fixtures.js";

function asBaseline(results: Results, name = "h200"): Baseline & { file: string } {
  return {
    baselineVersion: 1,
    name,
    createdAt: "2026-11-29T00:00:00Z",
    source: {},
    results,
    file: `baselines/${name}.json`,
  };
}

const baselineChecks = (v: { checks: Check[] }) => v.checks.filter((c) => c.source === "baseline" && c.metric !== "*");

/** A baseline of `runs` separate runs (seeds from `seed`), as baseline update --from ... --from ... writes it. */
function multiRun(runs: number, seed: number, o: Omit<Parameters<typeof syntheticRun>[0], "seed">, name = "h200") {
  const all = Array.from({ length: runs }, (_, i) => syntheticRun({ ...o, seed: seed + i }));
  return { ...asBaseline(all[0]!, name), moreRuns: all.slice(1) };
}

/**
 * The trial-level mechanics alone (rank test, Holm, thresholds): no run-to-run noise assumed or measured, so the
 * run-level test only sees the trials' own spread. What the gate did before runs were modelled.
 */
// inconclusive: warn, as when these tests were written (the default now passes an inconclusive change, saying so).
const TRIALS_ONLY = { runNoise: 0, runNoiseDf: 0, inconclusive: "warn" } as const;

describe("judge against a baseline", () => {
  it("identical distributions never fail across 300 seeds, and mostly pass", () => {
    let fails = 0;
    let passes = 0;
    const n = 300;
    for (let seed = 0; seed < n; seed++) {
      const base = syntheticRun({ seed: 2 * seed, trials: 5, noise: 0.03 });
      const cand = syntheticRun({ seed: 2 * seed + 1, trials: 5, noise: 0.03 });
      const v = judge({ results: cand, baseline: asBaseline(base), policy: { bootstrapResamples: 200 } });
      if (v.overall === "fail") fails++;
      if (v.overall === "pass") passes++;
    }
    expect(fails / n).toBeLessThanOrEqual(0.01);
    expect(passes / n).toBeGreaterThan(0.7);
  });

  it("a 15% slowdown on a quiet machine fails against a 5-run baseline, with a CI and the fail threshold in the reason", () => {
    const baseline = multiRun(5, 10, { trials: 5, noise: 0.02, runEffect: 0.01 });
    const slow = syntheticRun({ seed: 2, trials: 5, noise: 0.02, runEffect: 0.01, slowdown: 0.15 });
    const v = judge({ results: slow, baseline });
    expect(v.overall).toBe("fail");
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p95")!;
    expect(ttft.verdict).toBe("fail");
    expect(ttft.reason).toMatch(
      /^ttft p95 \+1\d% \[95% CI \+[\d.]+%\.\.\+[\d.]+%\] above fail 10% \(5 vs 1 runs, 25 vs 5 trials, run-to-run noise [\d.]+%, p(=0\.\d+|<0\.001) Holm\)$/,
    );
    expect(ttft.comparison).toMatchObject({ trials: { baseline: 25, candidate: 5 } });
    expect(ttft.comparison!.pAdjusted!).toBeGreaterThan(ttft.comparison!.pValue!);
    const tps = v.checks.find((c) => c.metric === "decode_tokens_per_s.p50")!;
    expect(tps.verdict).toBe("fail");
    expect(tps.reason).toMatch(/^decode tokens\/s p50 -1\d% .* below fail -10%/);
    expect(v.reason).toMatch(/^fail: latency: .* above fail 10%/);
  });

  it("is reproducible: the same inputs give the same verdict, CI included", () => {
    const base = syntheticRun({ seed: 1, trials: 5, noise: 0.05 });
    const cand = syntheticRun({ seed: 2, trials: 5, noise: 0.05, slowdown: 0.05 });
    expect(judge({ results: cand, baseline: asBaseline(base) })).toEqual(
      judge({ results: cand, baseline: asBaseline(base) }),
    );
  });

  it("a shift inside the noise floor passes", () => {
    const base = syntheticRun({ seed: 1, trials: 5, noise: 0.002 });
    const cand = syntheticRun({ seed: 2, trials: 5, noise: 0.002, slowdown: 0.01 });
    const v = judge({ results: cand, baseline: asBaseline(base), policy: TRIALS_ONLY });
    expect(v.overall).toBe("pass");
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p50")!;
    // Significant (the noise is tiny) but below the noise floor: not a regression worth a reviewer's time.
    expect(ttft.comparison!.pValue!).toBeLessThan(0.01);
    expect(ttft.reason).toMatch(/no significant change: within noise floor 2%; would have caught >= \d/);
  });

  it("an improvement passes and says so", () => {
    const base = syntheticRun({ seed: 1, trials: 5, noise: 0.01 });
    const fast = syntheticRun({ seed: 2, trials: 5, noise: 0.01, slowdown: -0.2 });
    const v = judge({ results: fast, baseline: asBaseline(base) });
    expect(v.overall).toBe("pass");
    expect(v.checks.find((c) => c.metric === "ttft_ms.p50")!.reason).toMatch(
      /^ttft p50 -\d+% .*better; would have caught >= /,
    );
  });

  it("too few trials warns inconclusive with the number of trials to add", () => {
    const base = syntheticRun({ seed: 1, trials: 2, noise: 0.01 });
    const slow = syntheticRun({ seed: 2, trials: 2, noise: 0.01, slowdown: 0.15 });
    const v = judge({ results: slow, baseline: asBaseline(base) });
    expect(v.overall).toBe("warn");
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p95")!;
    expect(ttft.verdict).toBe("warn");
    expect(ttft.reason).toMatch(/inconclusive: 3 more trials \(2 vs 2 trials, need 5\)$/);
    expect(ttft.comparison).toMatchObject({ inconclusive: true, moreTrials: 3 });
  });

  it("with too few trials, the per-request rank test is reported as supporting evidence only", () => {
    const base = syntheticRun({ seed: 1, trials: 1, noise: 0.01, histograms: true });
    const slow = syntheticRun({ seed: 2, trials: 1, noise: 0.01, slowdown: 0.15, histograms: true });
    const v = judge({ results: slow, baseline: asBaseline(base) });
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p50")!;
    expect(ttft.verdict).toBe("warn");
    expect(ttft.comparison!.requestPValue!).toBeLessThan(0.001);
    expect(ttft.reason).toContain("per-request rank test p<0.001 (ignores run-to-run noise)");
  });

  it("a significant but not Holm-significant regression is inconclusive; alone it fails", () => {
    // Baseline and candidate overlap in one pair: one-sided exact p = 2/252 = 0.0079 < 0.05, but Holm over the 8
    // gated metrics needs the smallest p <= 0.05 / 8 = 0.00625.
    const base = syntheticRun({ seed: 1, trials: 5, noise: 0.001 });
    const cand = syntheticRun({ seed: 2, trials: 5, noise: 0.001, slowdown: 0.15 });
    const ttft = cand.tests[0]!.metrics.ttft_ms!;
    const sortedBase = base.tests[0]!.metrics.ttft_ms!.trials.map((t) => t.p50).sort((a, b) => a - b);
    // Put one candidate trial just below the largest baseline trial: U = 24 of 25 in the worse direction.
    ttft.trials[0]!.p50 = sortedBase[4]! - 0.0001;
    for (const m of ["e2e_ms", "tpot_ms", "decode_tokens_per_s", "output_tokens_per_s", "requests_per_s"]) {
      // Make the other metrics unchanged, so only the Holm multiplicity (m = 8) differs between the two runs below.
      cand.tests[0]!.metrics[m] = base.tests[0]!.metrics[m]!;
    }
    const p50Only = judge({
      results: cand,
      baseline: asBaseline(base),
      policy: { ...TRIALS_ONLY, gate: [{ metric: "ttft_ms", stat: "p50" }] },
    });
    const alone = p50Only.checks.find((c) => c.metric === "ttft_ms.p50")!;
    expect(alone.comparison!.pValue).toBeCloseTo(2 / 252, 10);
    expect(alone.comparison!.pAdjusted).toBeCloseTo(2 / 252, 10);
    expect(alone.verdict).toBe("fail");

    const all = judge({ results: cand, baseline: asBaseline(base), policy: TRIALS_ONLY });
    const inFamily = all.checks.find((c) => c.metric === "ttft_ms.p50")!;
    expect(inFamily.comparison!.pValue).toBeCloseTo(2 / 252, 10);
    expect(inFamily.comparison!.pAdjusted!).toBeGreaterThan(0.05);
    expect(inFamily.verdict).toBe("warn");
    expect(inFamily.reason).toMatch(/inconclusive: \d+ more trials? \(p=0\.0\d+ Holm, needs <= 0\.05/);
  });

  it("Holm over the whole run is stricter than per test", () => {
    const tests = ["a", "b", "c"];
    const base = syntheticRun({ seed: 1, trials: 5, noise: 0.01, tests });
    const slow = syntheticRun({ seed: 2, trials: 5, noise: 0.01, slowdown: 0.15, tests });
    const perTest = judge({ results: slow, baseline: asBaseline(base), policy: TRIALS_ONLY });
    const perRun = judge({ results: slow, baseline: asBaseline(base), policy: { ...TRIALS_ONLY, holmFamily: "run" } });
    expect(perTest.overall).toBe("fail");
    // 24 metrics at 5 vs 5 trials: the smallest achievable p (1/252) is above 0.05/24, so nothing can fail, and the
    // verdict says why instead of passing.
    expect(perRun.overall).toBe("warn");
    expect(baselineChecks(perRun).every((c) => c.reason.includes("cannot go lower"))).toBe(true);
  });

  it("a fingerprint mismatch is said plainly and nothing is compared", () => {
    const base = syntheticRun({ seed: 1, trials: 5, noise: 0.02 });
    const other = syntheticRun({
      seed: 2,
      trials: 5,
      noise: 0.02,
      slowdown: 0.5,
      env: { gpus: [{ name: "NVIDIA A100", driver: "580.65" }] },
    });
    const v = judge({ results: other, baseline: asBaseline(base) });
    expect(v.overall).toBe("warn");
    expect(baselineChecks(v)).toEqual([]);
    expect(v.reason).toBe(
      "warn: not comparable with baseline baselines/h200.json: GPU differs (baseline NVIDIA H200, run NVIDIA A100); baseline comparison skipped",
    );
  });
});

describe("targets, errors and aborted tests in judge", () => {
  const run = syntheticRun({ seed: 1, trials: 3, noise: 0.01 });

  it("judges targets without a baseline", () => {
    const v = judge({ results: run, targets: ["ttft_p95_ms < 100", "requests_per_s > 1"] });
    expect(v.overall).toBe("fail");
    expect(v.checks.map((c) => [c.source, c.metric, c.verdict])).toEqual([
      ["run", "error_rate", "pass"],
      ["target", "ttft_ms.p95", "fail"],
      ["target", "requests_per_s.mean", "pass"],
    ]);
    expect(v.reason).toMatch(/^fail: latency: ttft p95 \d+ ms \(target < 100 ms\): misses by [\d.]+%$/);
  });

  it("a target no test measured is bad input naming what was measured", () => {
    let err: unknown;
    try {
      judge({ results: run, targets: ["itl_p95_ms < 5"] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).message).toBe('target "itl_p95_ms < 5": any test did not measure itl_ms');
    expect((err as BadInputError).hint).toContain("ttft_ms");
  });

  it("gates the error rate absolutely and fails aborted tests", () => {
    const bad = syntheticRun({ seed: 1, trials: 3, noise: 0.01 });
    bad.tests[0]!.requests = { ...bad.tests[0]!.requests, attempted: 100, failed: 2 };
    bad.tests[0]!.aborted = "server exited with code 139";
    const v = judge({ results: bad });
    expect(v.checks.map((c) => c.reason)).toEqual([
      "test aborted: server exited with code 139",
      "error rate 2% (2 of 100 requests failed): at or above fail 1%",
    ]);
    expect(v.overall).toBe("fail");
    bad.tests[0]!.requests.failed = 0;
    bad.tests[0]!.aborted = undefined;
    expect(judge({ results: bad }).reason).toBe("pass: 1 checks passed");
  });

  it("says so when there is nothing to check", () => {
    expect(judge({ results: { ...run, tests: [] } }).reason).toBe(
      "pass: nothing to check (no targets and no baseline)",
    );
  });

  it("refuses a policy with warn above fail, naming the field", () => {
    expect(() => judge({ results: run, policy: { warn: 0.2, fail: 0.1 } })).toThrow(BadInputError);
    expect(() => resolvePolicy({ warn: 0.2, fail: 0.1 }, { warn: "--warn-threshold" })).toThrow(
      expect.objectContaining({ subject: "--warn-threshold" }),
    );
  });
});

describe("compareResults: two results files", () => {
  it("compares different environments as asked, and says they differ first", () => {
    const a = syntheticRun({ seed: 1, trials: 5, noise: 0.02 });
    const b = syntheticRun({
      seed: 2,
      trials: 5,
      noise: 0.02,
      slowdown: 0.2,
      env: {
        cpuModel: "Other CPU",
        target: { ...a.environment.target, serverFlags: ["--threads", "4", "--parallel", "4"] },
      },
    });
    const v = compareResults(a, b, TRIALS_ONLY);
    expect(v.overall).toBe("fail");
    expect(v.checks[0]!.reason).toBe(
      "environments differ, compared as asked: CPU differs (baseline AMD EPYC 9654, run Other CPU)",
    );
    // A configuration change is not an environment difference: it is what changed.
    expect(v.changes).toEqual([{ field: "target.serverFlags.--threads", label: "--threads", baseline: "8", run: "4" }]);
    expect(baselineChecks(v).length).toBe(8);
    // On a machine whose runs differ by 10%, the same single runs cannot show a 20% slowdown beyond that noise.
    const honest = compareResults(a, b, { runNoise: 0.1 });
    expect(honest.overall).toBe("warn");
    expect(honest.checks.at(-1)!.reason).toBe(
      "single-run baseline: run-to-run noise assumed 10%; add runs with baseline update --from run1.json --from run2.json",
    );
  });

  it("says which tests differ between incompatible suites", () => {
    const a = syntheticRun({ seed: 1, trials: 5, noise: 0.02, tests: ["latency", "throughput", "old"] });
    const b = syntheticRun({ seed: 2, trials: 5, noise: 0.02, tests: ["latency", "throughput", "new"] });
    b.tests[1]!.params = { ...b.tests[1]!.params, concurrency: 8 };
    const reasons = compareTests(a, b, resolvePolicy())
      .filter((c) => c.metric === "*")
      .map((c) => c.reason);
    expect(reasons).toEqual([
      "test old is in the baseline but not in this run: not compared",
      "test throughput not comparable: params differ (concurrency baseline 1, run 8)",
      "test new is new: no baseline to compare with (propose one with tokengate baseline update)",
      "single-run baseline: run-to-run noise assumed 3%; add runs with baseline update --from run1.json --from run2.json",
    ]);
  });

  it("refuses two results with nothing in common, listing the tests", () => {
    const a = syntheticRun({ seed: 1, trials: 5, noise: 0.02, tests: ["latency"] });
    const b = syntheticRun({ seed: 2, trials: 5, noise: 0.02, tests: ["throughput"] });
    let err: unknown;
    try {
      compareResults(a, b);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).message).toContain("share no comparable test");
    expect((err as BadInputError).hint).toContain(
      "baseline tests: latency (only there: latency); candidate tests: throughput",
    );
  });
});

describe("confirmation rerun: a second candidate run", () => {
  const baseline = multiRun(5, 10, { trials: 5, noise: 0.02, runEffect: 0.01 });
  const slow = (seed: number) => syntheticRun({ seed, trials: 5, noise: 0.02, runEffect: 0.01, slowdown: 0.15 });
  const first = judge({ results: slow(2), baseline });

  it("asks for a rerun of the failing tests before failing", () => {
    expect(first.overall).toBe("fail");
    const plan = planConfirmation(first);
    expect(plan.needed).toBe(true);
    expect(plan.tests).toEqual(["latency"]);
    expect(plan.reason).toMatch(/^rerun latency to confirm \d failing comparisons? before failing$/);
    expect(planConfirmation(first, { confirmFails: false }).needed).toBe(false);
    expect(planConfirmation(judge({ results: baseline.results, baseline })).needed).toBe(false);
  });

  it("keeps a fail that the two candidate runs together, and the rerun alone, confirm", () => {
    const rerun = slow(3);
    const together = judge({ results: slow(2), moreRuns: [rerun], baseline });
    const ttftTogether = together.checks.find((c) => c.metric === "ttft_ms.p95")!;
    // Two candidate runs are two runs, never ten trials of one.
    expect(ttftTogether.reason).toMatch(/\(5 vs 2 runs, 25 vs 10 trials, /);
    const v = applyConfirmation(first, together, {}, { runs: 2, rerunAlone: judge({ results: rerun, baseline }) });
    expect(v.overall).toBe("fail");
    const failed = v.checks.find((c) => c.verdict === "fail")!;
    expect(failed.comparison!.confirmation).toBe("confirmed");
    expect(failed.reason).toMatch(/; confirmed: 2 runs \+1\d%$/);
    expect(planConfirmation(v).needed).toBe(false);
  });

  it("turns a fail the rerun does not reproduce into warn", () => {
    const rerun = syntheticRun({ seed: 3, trials: 5, noise: 0.02, runEffect: 0.01 });
    const together = judge({ results: slow(2), moreRuns: [rerun], baseline });
    const v = applyConfirmation(first, together, {}, { runs: 2, rerunAlone: judge({ results: rerun, baseline }) });
    expect(v.overall).toBe("warn");
    const was = first.checks.find((c) => c.verdict === "fail")!;
    const now = v.checks.find((c) => c.metric === was.metric && c.test === was.test)!;
    expect(now.verdict).toBe("warn");
    expect(now.comparison!.confirmation).toBe("not-confirmed");
    expect(now.reason).toMatch(/; not confirmed: 2 runs [-+]?\d+(\.\d)?% \((pass|warn)\)$/);
  });

  it("one overloaded run cannot carry a fail: the rerun alone must regress too", () => {
    // The first run was 60% slow (an overloaded machine), the rerun is normal: together they may still look
    // significant, the rerun alone does not.
    const overloaded = syntheticRun({ seed: 2, trials: 5, noise: 0.02, runEffect: 0.01, slowdown: 0.6 });
    const firstV = judge({ results: overloaded, baseline });
    expect(firstV.overall).toBe("fail");
    const rerun = syntheticRun({ seed: 3, trials: 5, noise: 0.02, runEffect: 0.01 });
    const together = judge({ results: overloaded, moreRuns: [rerun], baseline });
    const v = applyConfirmation(firstV, together, {}, { runs: 2, rerunAlone: judge({ results: rerun, baseline }) });
    expect(v.overall).toBe("warn");
  });

  it("confirmVerdict judges the first run and the rerun as two candidate runs", () => {
    const results = { ...slow(2), verdict: first };
    const comparison = { label: "baselines/h200.json", baseline };
    const confirmed = confirmVerdict(results, slow(3), comparison);
    expect(confirmed.overall).toBe("fail");
    expect(confirmed.checks.some((c) => c.comparison?.confirmation === "confirmed")).toBe(true);
    const normal = syntheticRun({ seed: 3, trials: 5, noise: 0.02, runEffect: 0.01 });
    expect(confirmVerdict(results, normal, comparison).overall).toBe("warn");
  });

  it("the suite's policy decides: a fail threshold above the change warns, in the verdict and the confirmation", () => {
    const suite = validateSuite({ tests: [{ kind: "latency" }], policy: { fail: "50%" } }, "suite.yml");
    const comparison = { label: "baselines/h200.json", baseline };
    const strict = decideVerdict(slow(2), validateSuite({ tests: [{ kind: "latency" }] }, "suite.yml"), comparison);
    expect(strict.overall).toBe("fail");
    const lenient = decideVerdict(slow(2), suite, comparison);
    expect(lenient.overall).toBe("warn");
    expect(lenient.checks.some((c) => /above warn 5%/.test(c.reason))).toBe(true);
    // The rerun is judged with the policy passed: 15% is below a 20% warn threshold, so the first fail is not confirmed.
    const results = { ...slow(2), verdict: first };
    expect(confirmVerdict(results, slow(3), comparison).overall).toBe("fail");
    const higher = validateSuite({ tests: [{ kind: "latency" }], policy: { warn: "20%", fail: "30%" } }, "suite.yml");
    expect(confirmVerdict(results, slow(3), comparison, policyFromBlock(higher.policy)).overall).toBe("warn");
  });
});
