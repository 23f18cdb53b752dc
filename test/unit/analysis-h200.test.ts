/**
 * The verdict statistics on real measurements: 28 separate runs of the gpu-validate suite on an H200 (7B q4_0 on
 * llama-server, 14 runs at 32 layers = A, 14 at 36 layers = B, interleaved; docs/verdicts.md "Validation"). These are
 * the validation targets checked with the default policy, so a change to the statistics or its defaults that
 * loses them fails here, not in a write-up.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { RUN_NOISE_DEFAULTS } from "../../src/analysis/policy.js";
import { validateFiles } from "../../src/analysis/validate.js";

const dir = fileURLToPath(new URL("../../docs/runs/validation/h200-l32-l36/", import.meta.url));
const pool = (side: "a" | "b") => Array.from({ length: 14 }, (_, i) => `${dir}${side}${i + 1}.json`);

describe("validation on real H200 runs (default policy, 5 trials, 3-run baselines, confirmation rerun)", () => {
  it("A/A: at most 1% false fails in either pool", async () => {
    for (const side of ["a", "b"] as const) {
      const r = await validateFiles({ a: pool(side) });
      expect(r.comparisons).toBe(200);
      expect(r.baselineRuns).toBe(3);
      expect(r.confirmed.failRate).toBeLessThanOrEqual(0.01);
      // The pools' run-to-run noise is what the GPU default was set from (median over gated metrics, 2.7-2.8%).
      const between = Object.values(r.noise.a)
        .map((e) => e.between)
        .sort((x, y) => x - y);
      const median = between[between.length >> 1]!;
      expect(median).toBeGreaterThan(0.015);
      expect(median).toBeLessThanOrEqual(RUN_NOISE_DEFAULTS.gpu);
    }
  });

  it("A/B of the real ~10% slowdown: at least 95% warn or fail and at least 80% fail", async () => {
    // Issue 5's target counted inconclusive warns as detection; the default now passes them (saying so), which
    // leaves the fail rate as it was: checked under both.
    const r = await validateFiles({ a: pool("a"), b: pool("b"), policy: { inconclusive: "warn" } });
    const byDefault = await validateFiles({ a: pool("a"), b: pool("b") });
    expect(byDefault.confirmed.failRate).toBe(r.confirmed.failRate);
    const ttft = r.observedChange["latency/ttft_ms.p50"]!;
    expect(ttft).toBeGreaterThan(0.07);
    expect(ttft).toBeLessThan(0.13);
    expect(r.confirmed.warnOrFailRate).toBeGreaterThanOrEqual(0.95);
    expect(r.confirmed.failRate).toBeGreaterThanOrEqual(0.8);
  });
});
