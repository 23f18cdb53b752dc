import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatValidation, validateFiles, validateVerdicts } from "../../src/analysis/validate.js";
import { BadInputError } from "../../src/util/errors.js";
import { type SyntheticOptions, syntheticRun } from "./analysis-fixtures.js";

// Synthetic "real runs": separate server processes, each with a run effect (5% sd) shared by its 5 trials (3% noise).
const RUNS: Omit<SyntheticOptions, "seed"> = { trials: 5, noise: 0.03, runEffect: 0.05, tests: ["latency", "tput"] };
const pool = (n: number, seed: number, slowdown = 0) =>
  Array.from({ length: n }, (_, i) => syntheticRun({ ...RUNS, seed: seed + i, slowdown }));
const aRuns = pool(12, 100);
const bRuns = pool(8, 300, 0.2);

describe("validateVerdicts: runs and trials", () => {
  it("A/A from one pool of runs: distinct runs as baseline, candidate and rerun; false fails at most 1%", () => {
    // The fixture machine's runs differ by 5%: the assumed run noise is set to that, as validate's output advises.
    const r = validateVerdicts({ a: aRuns, seed: 1, policy: { runNoise: 0.05 } });
    expect(r.mode).toBe("runs");
    expect(r.pooled).toBe(true);
    expect(r.baselineRuns).toBe(3);
    expect(r.comparisons).toBe(200);
    expect(r.counts.pass + r.counts.warn + r.counts.fail).toBe(200);
    expect(r.confirmation).toBe("fresh run");
    expect(r.confirmed.failRate).toBeLessThanOrEqual(0.01);
    expect(r.confirmed.failRate).toBeLessThanOrEqual(r.failRate);
    // C(12, 3) baseline sets x 9 candidates x 8 reruns.
    expect(r.distinctRunDraws).toBe(220 * 9 * 8);
    expect(r.method).toBe(
      "200 comparisons, each drawing 3 baseline runs and 1 candidate run, all distinct, from 12 runs (all 5 trials of each run); a failing comparison is confirmed with one more distinct run of the pool",
    );
    // It measures the noise the runs were made with: 5% between runs (plus a per-metric third), 3% within.
    const between = Object.values(r.noise.a).map((e) => e.between);
    const median = between.sort((x, y) => x - y)[between.length >> 1]!;
    expect(median).toBeGreaterThan(0.02);
    expect(median).toBeLessThan(0.12);
  });

  it("A/B of a 20% slowdown: 5-run baselines detect it as warn or fail, and mostly fail", () => {
    const r = validateVerdicts({
      a: aRuns,
      b: bRuns,
      baselineRuns: 5,
      seed: 2,
      comparisons: 100,
      policy: { inconclusive: "warn" },
    });
    expect(r.pooled).toBe(false);
    expect(r.confirmed.warnOrFailRate).toBeGreaterThanOrEqual(0.95);
    expect(r.confirmed.failRate).toBeGreaterThanOrEqual(0.7);
    expect(r.observedChange["latency/ttft_ms.p95"]).toBeGreaterThan(0.1);
    expect(r.observedChange["latency/requests_per_s.mean"]).toBeLessThan(-0.1);
    expect(Object.keys(r.noise.b).length).toBeGreaterThan(0);
  });

  it("draws K of each run's trials when runs have more", () => {
    const long = Array.from({ length: 4 }, (_, i) => syntheticRun({ ...RUNS, trials: 10, seed: 500 + i }));
    const r = validateVerdicts({ a: long, seed: 3, comparisons: 100 });
    expect(r.method).toContain("(5 of each run's 10 trials drawn without replacement)");
    expect(r.confirmation).toBe("fresh run");
    expect(r.baselineRuns).toBe(2);
  });

  it("says when no run is left for the confirmation rerun", () => {
    const r = validateVerdicts({ a: aRuns.slice(0, 4), baselineRuns: 3, seed: 3, comparisons: 100 });
    expect(r.confirmation).toBe("unavailable");
    expect(formatValidation(r)).toContain("confirmation rerun: unavailable");
  });

  it("is reproducible from its seed", () => {
    const x = validateVerdicts({ a: aRuns, b: bRuns, seed: 9, comparisons: 100 });
    const y = validateVerdicts({ a: aRuns, b: bRuns, seed: 9, comparisons: 100 });
    expect(x).toEqual(y);
  });

  it("reads lists of results files and baselines, and formats a report", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tokengate-validate-"));
    try {
      const a = await Promise.all(
        aRuns.slice(0, 6).map(async (r, i) => {
          const f = join(dir, `a${i}.json`);
          await writeFile(f, JSON.stringify(r));
          return f;
        }),
      );
      const b = await Promise.all(
        bRuns.slice(0, 3).map(async (r, i) => {
          const f = join(dir, `b${i}.json`);
          await writeFile(f, JSON.stringify(r));
          return f;
        }),
      );
      const r = await validateFiles({ a, b, comparisons: 100 });
      expect(r.runsAvailable).toEqual({ a: 6, b: 3 });
      expect(r.mode).toBe("runs");
      const text = formatValidation(r, { a: "A", b: "B" });
      expect(text).toMatch(/^validate A vs B: 100 comparisons, each drawing 3 of A's 6 runs/);
      expect(text).toMatch(/detected [\d.]+% as warn or fail \(target >= 95%\), [\d.]+% as fail \(target >= 80%\)/);
      expect(text).toMatch(/noise in A \(6 runs\): run-to-run [\d.]+%/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses too few runs, trials or comparisons, naming what is missing", () => {
    expect(() => validateVerdicts({ a: aRuns.slice(0, 3), baselineRuns: 3 })).toThrow(
      /3 baseline runs cannot be drawn: side A has 3 runs and one must be the candidate/,
    );
    expect(() => validateVerdicts({ a: aRuns, k: 6 })).toThrow(/each run needs at least 6 trials per test; A has 5/);
    expect(() => validateVerdicts({ a: aRuns, comparisons: 50 })).toThrow(BadInputError);
  });
});

describe("validateVerdicts: one run a side (trials only)", () => {
  // One long run per side: the harness can only resample trials, so it sees no run-to-run noise (docs: optimistic).
  const a = syntheticRun({ seed: 101, trials: 20, noise: 0.03 });
  const aPrime = syntheticRun({ seed: 202, trials: 20, noise: 0.03 });
  const b30 = syntheticRun({ seed: 303, trials: 20, noise: 0.03, slowdown: 0.3 });

  it("A/A from two runs", () => {
    const r = validateVerdicts({ a, b: aPrime, seed: 1 });
    expect(r.mode).toBe("two-runs");
    expect(r.confirmation).toBe("same run");
    expect(r.failRate).toBeLessThanOrEqual(0.01);
    expect(r.method).toBe("200 comparisons of 5 vs 5 trials, drawn without replacement from A's 20 and B's 20 trials");
  });

  it("A/A by splitting one run into disjoint halves", () => {
    const r = validateVerdicts({ a, seed: 2, comparisons: 100 });
    expect(r.mode).toBe("split");
    expect(r.failRate).toBeLessThanOrEqual(0.01);
    expect(r.method).toContain("split into disjoint halves");
    expect(r.observedChange).toEqual({});
  });

  it("A/B: a 30% slowdown from single runs is detected against the assumed run noise", () => {
    const r = validateVerdicts({ a, b: b30, seed: 3 });
    expect(r.warnOrFailRate).toBeGreaterThanOrEqual(0.95);
    expect(r.observedChange["latency/ttft_ms.p95"]).toBeGreaterThan(0.2);
  });

  it("refuses a run with too few trials to split", () => {
    const short = syntheticRun({ seed: 1, trials: 8, noise: 0.03 });
    expect(() => validateVerdicts({ a: short })).toThrow(
      /splitting one run needs 10 trials per test \(2 x 5\); it has 8/,
    );
  });
});
