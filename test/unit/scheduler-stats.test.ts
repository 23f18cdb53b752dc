import { describe, expect, it } from "vitest";
import { createRng } from "../../src/util/rng.js";
import { arrivalOffsetsNs, createArrivals, gammaShape } from "../../src/workload/schedulers/arrivals.js";
import { createTaskPicker, drawThinkMs, meanThinkS, thinkTimeOf } from "../../src/workload/schedulers/tasks.js";

/** Mean and coefficient of variation of n gaps (seconds). */
function gapStats(gapsNs: number[]): { mean: number; cv: number } {
  const s = gapsNs.map((g) => g / 1e9);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / (s.length - 1));
  return { mean, cv: sd / mean };
}

function gaps(pattern: "constant" | "poisson" | "gamma", rate: number, n: number, extra = {}, seed = 7): number[] {
  const p = createArrivals({ pattern, ratePerS: rate, ...extra }, createRng(seed));
  return Array.from({ length: n }, () => p.nextGapNs());
}

describe("arrival processes (seeded, no clock)", () => {
  const N = 40_000;

  it("constant: every gap is exactly 1/rate", () => {
    const g = gaps("constant", 200, 1000);
    expect(new Set(g).size).toBe(1);
    expect(g[0]).toBe(5_000_000);
    expect(arrivalOffsetsNs(createArrivals({ pattern: "constant", ratePerS: 4 }, createRng(1)), 3)).toEqual([
      0, 250_000_000, 500_000_000,
    ]);
  });

  it("poisson: exponential gaps with mean 1/rate and CV 1", () => {
    const { mean, cv } = gapStats(gaps("poisson", 50, N));
    // Standard error of the mean is 1/sqrt(N) = 0.5% of it; 3% is > 5 SE.
    expect(mean).toBeGreaterThan((1 / 50) * 0.97);
    expect(mean).toBeLessThan((1 / 50) * 1.03);
    expect(cv).toBeGreaterThan(0.96);
    expect(cv).toBeLessThan(1.04);
  });

  it("poisson: the fraction of gaps above the mean is e^-1 (memoryless shape, not just the moments)", () => {
    const g = gaps("poisson", 10, N);
    const above = g.filter((x) => x > 1e8).length / N;
    expect(above).toBeGreaterThan(Math.exp(-1) - 0.015);
    expect(above).toBeLessThan(Math.exp(-1) + 0.015);
  });

  it.each([
    [{ burstiness: 0.25 }, 2],
    [{ burstiness: 4 }, 0.5],
    [{ cv: 3 }, 3],
    [{ cv: 0.2 }, 0.2],
  ])("gamma %o: mean 1/rate, CV = 1/sqrt(shape) = %f", (extra, wantCv) => {
    const { mean, cv } = gapStats(gaps("gamma", 20, N, extra));
    expect(mean).toBeGreaterThan(0.05 * 0.95);
    expect(mean).toBeLessThan(0.05 * 1.05);
    expect(cv).toBeGreaterThan(wantCv * 0.93);
    expect(cv).toBeLessThan(wantCv * 1.07);
  });

  it("gamma with burstiness 1 is Poisson; cv overrides burstiness", () => {
    expect(gammaShape({ pattern: "gamma", ratePerS: 1, burstiness: 1 })).toBe(1);
    expect(gammaShape({ pattern: "gamma", ratePerS: 1, burstiness: 9, cv: 0.5 })).toBe(4);
    expect(gammaShape({ pattern: "constant", ratePerS: 1 })).toBe(Number.POSITIVE_INFINITY);
  });

  it("the same seed gives the same schedule; another seed another one", () => {
    expect(gaps("poisson", 5, 50, {}, 3)).toEqual(gaps("poisson", 5, 50, {}, 3));
    expect(gaps("poisson", 5, 50, {}, 3)).not.toEqual(gaps("poisson", 5, 50, {}, 4));
  });

  it("rejects a rate that is not positive", () => {
    expect(() => createArrivals({ pattern: "poisson", ratePerS: 0 }, createRng(1))).toThrow(RangeError);
  });
});

describe("weighted tasks and think time (locust semantics)", () => {
  it("@task(1) and @task(3): picks in proportion 1:3", () => {
    const pick = createTaskPicker(
      [
        { name: "completion", weight: 1 },
        { name: "chat", weight: 3 },
      ],
      createRng(11),
    );
    const n = 40_000;
    let chat = 0;
    for (let i = 0; i < n; i++) if (pick().name === "chat") chat++;
    // Binomial SE = sqrt(.75*.25/n) = 0.2%; 1.5% is > 7 SE.
    expect(chat / n).toBeGreaterThan(0.735);
    expect(chat / n).toBeLessThan(0.765);
  });

  it("three tasks with fractional weights", () => {
    const tasks = [
      { name: "a", weight: 0.5 },
      { name: "b", weight: 1.5 },
      { name: "c", weight: 2 },
    ];
    const pick = createTaskPicker(tasks, createRng(5));
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 40_000; i++) counts[pick().name]!++;
    expect(counts.a! / 40_000).toBeCloseTo(0.125, 1);
    expect(counts.b! / 40_000).toBeCloseTo(0.375, 1);
    expect(counts.c! / 40_000).toBeCloseTo(0.5, 1);
  });

  it("rejects empty task lists and non-positive weights", () => {
    expect(() => createTaskPicker([], createRng(1))).toThrow(RangeError);
    expect(() => createTaskPicker([{ weight: 0 }], createRng(1))).toThrow(RangeError);
  });

  it("between(1, 3): uniform on [1 s, 3 s), mean 2 s", () => {
    const t = thinkTimeOf([1, 3]);
    expect(meanThinkS(t)).toBe(2);
    const rng = createRng(2);
    const draws = Array.from({ length: 20_000 }, () => drawThinkMs(t, rng));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...draws)).toBeLessThan(3000);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(1980);
    expect(mean).toBeLessThan(2020);
    // Uniform: a quarter of the draws in each quarter of the range.
    const q1 = draws.filter((d) => d < 1500).length / draws.length;
    expect(q1).toBeGreaterThan(0.235);
    expect(q1).toBeLessThan(0.265);
  });

  it("constant and none; reversed bounds are ordered", () => {
    expect(drawThinkMs(thinkTimeOf(0.5), createRng(1))).toBe(500);
    expect(drawThinkMs(thinkTimeOf(undefined), createRng(1))).toBe(0);
    expect(thinkTimeOf([3, 1])).toEqual({ kind: "between", minS: 1, maxS: 3 });
  });
});
