import { describe, expect, it } from "vitest";
import { validateFiles, validateVerdicts } from "../../src/analysis/validate.js";
import { BadInputError } from "../../src/util/errors.js";
import { syntheticRun } from "./analysis-fixtures.js";

// Synthetic "real runs": 20 trials each, 3% run-to-run noise (log-normal), as a quiet dedicated runner might give.
const a = syntheticRun({ seed: 101, trials: 20, noise: 0.03 });
const aPrime = syntheticRun({ seed: 202, trials: 20, noise: 0.03 });
const b15 = syntheticRun({ seed: 303, trials: 20, noise: 0.03, slowdown: 0.15 });

describe("validateVerdicts", () => {
  it("A/A from two runs: false-fail rate at most 1% over 200 resampled comparisons", () => {
    const r = validateVerdicts({ a, b: aPrime, seed: 1 });
    expect(r.mode).toBe("two-runs");
    expect(r.comparisons).toBe(200);
    expect(r.k).toBe(5);
    expect(r.counts.pass + r.counts.warn + r.counts.fail).toBe(200);
    expect(r.failRate).toBeLessThanOrEqual(0.01);
    expect(r.confirmed.failRate).toBeLessThanOrEqual(r.failRate);
    expect(r.method).toBe("200 comparisons of 5 vs 5 trials, drawn without replacement from A's 20 and B's 20 trials");
  });

  it("A/A by splitting one run into disjoint halves", () => {
    const r = validateVerdicts({ a, seed: 2, comparisons: 100 });
    expect(r.mode).toBe("split");
    expect(r.failRate).toBeLessThanOrEqual(0.01);
    expect(r.method).toContain("split into disjoint halves");
    expect(r.observedChange).toEqual({});
  });

  it("A/B with a 15% slowdown: detected as warn or fail at least 95%, as fail at least 80%", () => {
    const r = validateVerdicts({ a, b: b15, seed: 3 });
    expect(r.warnOrFailRate).toBeGreaterThanOrEqual(0.95);
    expect(r.failRate).toBeGreaterThanOrEqual(0.8);
    expect(r.confirmed.failRate).toBeGreaterThanOrEqual(0.75);
    expect(r.perMetric["latency/ttft_ms.p95"]!.fail).toBeGreaterThan(150);
    // The slowdown the two runs really show, over all their trials.
    expect(r.observedChange["latency/ttft_ms.p95"]).toBeGreaterThan(0.1);
    expect(r.observedChange["latency/requests_per_s.mean"]).toBeLessThan(-0.1);
  });

  it("is reproducible from its seed", () => {
    const x = validateVerdicts({ a, b: b15, seed: 9, comparisons: 100 });
    const y = validateVerdicts({ a, b: b15, seed: 9, comparisons: 100 });
    expect(x).toEqual(y);
  });

  it("reads results files", async () => {
    const { mkdtemp, rm, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "tokengate-validate-"));
    try {
      await writeFile(join(dir, "a.json"), JSON.stringify(a));
      await writeFile(join(dir, "b.json"), JSON.stringify(b15));
      const r = await validateFiles({ a: join(dir, "a.json"), b: join(dir, "b.json"), comparisons: 100 });
      expect(r.mode).toBe("two-runs");
      expect(r.warnOrFailRate).toBeGreaterThanOrEqual(0.95);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses runs with too few trials or too few comparisons", () => {
    const short = syntheticRun({ seed: 1, trials: 8, noise: 0.03 });
    expect(() => validateVerdicts({ a: short })).toThrow(
      /splitting one run needs 10 trials per test \(2 x 5\); it has 8/,
    );
    expect(() => validateVerdicts({ a, b: aPrime, comparisons: 50 })).toThrow(BadInputError);
  });
});
