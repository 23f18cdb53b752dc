import { describe, expect, it } from "vitest";
import {
  binomial,
  bootstrapMedianRatio,
  holmAdjust,
  mannWhitney,
  midranks,
  minOneSidedP,
  runLevelInterval,
  runLevelTest,
  seededNormal,
  seededRandom,
  studentTCdf,
  studentTQuantile,
  studentTSampler,
  trialsNeeded,
} from "../../src/analysis/stats.js";

describe("mannWhitney against published values", () => {
  // scipy.stats.mannwhitneyu docs: males vs females, U1 = 17, exact p = 0.1111, asymptotic p = 0.11134688653314041.
  const males = [19, 22, 16, 29, 24];
  const females = [20, 11, 17, 12];

  it("matches scipy's exact example", () => {
    const r = mannWhitney(females, males, "two-sided");
    expect(r.method).toBe("exact");
    expect(r.u).toBe(17);
    expect(r.pValue).toBeCloseTo(0.1111111111, 9);
  });

  it("matches scipy's asymptotic example (tie and continuity corrected)", () => {
    const r = mannWhitney(females, males, "two-sided", "normal");
    expect(r.method).toBe("normal");
    expect(r.pValue).toBeCloseTo(0.11134688653314041, 12);
  });

  it("matches R's wilcox.test example (Hollander & Wolfe): W = 35, p = 0.1272 one-sided", () => {
    const x = [0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
    const y = [1.15, 0.88, 0.9, 0.74, 1.21];
    const r = mannWhitney(y, x, "greater");
    expect(r.u).toBe(35);
    expect(r.pValue).toBeCloseTo(0.1272, 4);
  });

  it("gives 1/C(10,5) one-sided and twice that two-sided for fully separated 5 vs 5", () => {
    const lo = [1, 2, 3, 4, 5];
    const hi = [6, 7, 8, 9, 10];
    expect(mannWhitney(lo, hi, "greater").pValue).toBeCloseTo(1 / 252, 12);
    expect(mannWhitney(lo, hi, "two-sided").pValue).toBeCloseTo(2 / 252, 12);
    expect(mannWhitney(lo, hi, "less").pValue).toBeCloseTo(1, 12);
    expect(minOneSidedP(5, 5)).toBeCloseTo(1 / 252, 12);
    expect(binomial(10, 5)).toBe(252);
  });

  it("stays exact with ties (enumerated by hand)", () => {
    // Pooled [1, 2, 2, 3] has mid-ranks [1, 2.5, 2.5, 4]; candidate {2, 3} has rank sum 6.5; 2 of the 6 subsets of
    // size 2 reach 6.5.
    expect(midranks([1, 2, 2, 3])).toEqual([1, 2.5, 2.5, 4]);
    const r = mannWhitney([1, 2], [2, 3], "greater");
    expect(r.w).toBe(6.5);
    expect(r.pValue).toBeCloseTo(1 / 3, 12);
  });

  it("exact and normal agree for moderate samples", () => {
    const normal = seededNormal(seededRandom(3));
    const x = Array.from({ length: 25 }, () => normal());
    const y = Array.from({ length: 25 }, () => normal() + 0.5);
    const exact = mannWhitney(x, y, "greater", "exact").pValue;
    const approx = mannWhitney(x, y, "greater", "normal").pValue;
    expect(Math.abs(exact - approx)).toBeLessThan(0.005);
  });

  it("is valid under the null: about alpha of one-sided tests reject at 5 vs 5", () => {
    const normal = seededNormal(seededRandom(11));
    let rejects = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const x = Array.from({ length: 5 }, () => normal());
      const y = Array.from({ length: 5 }, () => normal());
      if (mannWhitney(x, y, "greater").pValue <= 0.05) rejects++;
    }
    // Exact test is conservative at this size: P(p <= 0.05) = 0.0476 under H0.
    expect(rejects / n).toBeGreaterThan(0.03);
    expect(rejects / n).toBeLessThan(0.065);
  });
});

describe("holmAdjust", () => {
  it("matches R's p.adjust(method = 'holm')", () => {
    expect(holmAdjust([0.01, 0.04, 0.03, 0.005])).toEqual([0.03, 0.06, 0.06, 0.02]);
    expect(holmAdjust([0.5])).toEqual([0.5]);
    expect(holmAdjust([])).toEqual([]);
  });
});

describe("bootstrapMedianRatio", () => {
  const x = [100, 101, 99, 102, 98];
  const y = [115, 114, 116, 113, 117];

  it("brackets the ratio of medians and is reproducible from its seed", () => {
    const a = bootstrapMedianRatio(x, y, { resamples: 2000, level: 0.95, random: seededRandom(1) });
    const b = bootstrapMedianRatio(x, y, { resamples: 2000, level: 0.95, random: seededRandom(1) });
    expect(a).toEqual(b);
    expect(a.ratio).toBeCloseTo(1.15, 12);
    expect(a.low).toBeLessThanOrEqual(a.ratio);
    expect(a.high).toBeGreaterThanOrEqual(a.ratio);
    expect(a.low).toBeGreaterThan(1.1);
    expect(a.high).toBeLessThan(1.2);
    expect(a.resamples).toBe(2000);
  });

  it("widens with noise", () => {
    const noisy = [80, 120, 95, 130, 70];
    const tight = bootstrapMedianRatio(x, y, { resamples: 1000, level: 0.95, random: seededRandom(2) });
    const wide = bootstrapMedianRatio(noisy, y, { resamples: 1000, level: 0.95, random: seededRandom(2) });
    expect(wide.high - wide.low).toBeGreaterThan(3 * (tight.high - tight.low));
  });

  it("treats a zero baseline as an infinite increase, and 0/0 as no change", () => {
    const r = bootstrapMedianRatio([0, 0, 0], [0, 0, 0], { resamples: 100, level: 0.9, random: seededRandom(1) });
    expect(r.ratio).toBe(1);
  });
});

describe("trialsNeeded", () => {
  it("asks for more trials when noise is larger relative to the change", () => {
    const base = [100, 102, 98, 101, 99];
    const calm = trialsNeeded(base, [106, 108, 104, 107, 105], { alphaEach: 0.05 / 8, minTrials: 5 });
    const noisy = trialsNeeded([90, 110, 95, 105, 100], [96, 116, 101, 111, 106], {
      alphaEach: 0.05 / 8,
      minTrials: 5,
    });
    expect(noisy.perSide).toBeGreaterThan(calm.perSide);
    expect(noisy.limitedBy).toBe("noise");
  });

  it("never asks for fewer than the rank test can resolve", () => {
    // 1 / C(2n, n) <= 0.05 / 100 needs n >= 7 (C(14, 7) = 3432).
    const r = trialsNeeded([100, 100.1], [200, 200.1], { alphaEach: 0.0005, minTrials: 2 });
    expect(r.perSide).toBe(7);
    expect(r.limitedBy).toBe("rank-test resolution");
  });
});

describe("seededRandom", () => {
  it("repeats for one seed and differs across seeds", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom("42:other");
    const sa = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(sa);
    expect([c(), c(), c()]).not.toEqual(sa);
    for (const v of sa) expect(v >= 0 && v < 1).toBe(true);
  });
});

describe("Student t distribution (jstat) against scipy", () => {
  it("matches scipy.stats.t", () => {
    expect(studentTCdf(-3, 4)).toBeCloseTo(0.019970984035859413, 9);
    expect(studentTCdf(1.5, 2.5)).toBeCloseTo(0.8760817734568519, 8);
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.228138851986274, 7);
    // Infinite degrees of freedom: the normal.
    expect(studentTQuantile(0.975, Number.POSITIVE_INFINITY)).toBeCloseTo(1.959963984540054, 9);
    expect(studentTCdf(Number.POSITIVE_INFINITY, 3)).toBe(1);
  });
});

describe("runLevelTest", () => {
  it("with one trial per run and no assumed noise, is the pooled two-sample t-test on ln run values (scipy)", () => {
    // scipy.stats.ttest_ind(log([118, 121]), log([100, 104, 97]), equal_var=True, alternative="greater"):
    // statistic 6.330618431029839, p 0.003984777585964505, mean difference 0.17514689715358767.
    const r = runLevelTest([[100], [104], [97]], [[118], [121]], {
      runNoise: 0,
      runNoiseDf: 0,
      alternative: "greater",
    })!;
    expect(r.logRatio).toBeCloseTo(0.17514689715358767, 12);
    expect(r.t).toBeCloseTo(6.330618431029839, 9);
    expect(r.df).toBeCloseTo(3, 9);
    expect(r.pValue).toBeCloseTo(0.003984777585964505, 9);
    expect(r.runs).toEqual({ baseline: 3, candidate: 2 });
    expect(r.assumed).toBe(false);
    // The same runs read as a rate (higher is better): the candidate is better, not worse.
    const less = runLevelTest([[100], [104], [97]], [[118], [121]], {
      runNoise: 0,
      runNoiseDf: 0,
      alternative: "less",
    })!;
    expect(less.pValue).toBeCloseTo(1 - 0.003984777585964505, 9);
  });

  it("with one run a side, uses the assumed run noise: a z-like test of the ln ratio", () => {
    // Identical trials: no trial noise, so the variance is 2 * ln(1.05)^2 with runNoiseDf degrees of freedom.
    const r = runLevelTest([[100, 100, 100]], [[120, 120, 120]], {
      runNoise: 0.05,
      runNoiseDf: 4,
      alternative: "greater",
    })!;
    expect(r.assumed).toBe(true);
    expect(r.betweenSd).toBeCloseTo(Math.log(1.05), 12);
    expect(r.se).toBeCloseTo(Math.sqrt(2) * Math.log(1.05), 12);
    expect(r.df).toBeCloseTo(4, 9);
    expect(r.t).toBeCloseTo(Math.log(1.2) / (Math.sqrt(2) * Math.log(1.05)), 9);
    expect(r.pValue).toBeCloseTo(1 - studentTCdf(r.t, 4), 12);
  });

  it("runs that agree closely are not evidence of no run noise: the assumption keeps its weight", () => {
    const tight = [
      [100, 101, 99],
      [100, 100, 101],
      [99, 100, 100],
    ];
    const r = runLevelTest(tight, [[110, 111, 109]], { runNoise: 0.05, runNoiseDf: 4, alternative: "greater" })!;
    expect(r.measuredBetweenSd).toBeLessThan(0.005);
    // (4 * ln(1.05)^2 + measured) / (4 + 2): two thirds of the assumption at least.
    expect(r.betweenSd).toBeGreaterThan(Math.sqrt((4 / 6) * Math.log(1.05) ** 2) - 1e-12);
    expect(r.betweenDf).toBe(6);
  });

  it("a noisier run counts its own trial noise", () => {
    const calm = runLevelTest([[100, 101, 99, 100, 100]], [[110, 111, 109, 110, 110]], {
      runNoise: 0,
      runNoiseDf: 0,
      alternative: "greater",
    })!;
    const noisy = runLevelTest([[100, 101, 99, 100, 100]], [[110, 160, 80, 110, 130]], {
      runNoise: 0,
      runNoiseDf: 0,
      alternative: "greater",
    })!;
    expect(noisy.se).toBeGreaterThan(3 * calm.se);
  });

  it("leaves out values that are not positive, and gives up without values", () => {
    expect(runLevelTest([[0, -1]], [[1]], { runNoise: 0.05, runNoiseDf: 4, alternative: "greater" })).toBeUndefined();
    const r = runLevelTest([[0, 100, 100]], [[100, 100]], { runNoise: 0.05, runNoiseDf: 4, alternative: "greater" })!;
    expect(r.logRatio).toBe(0);
  });
});

describe("studentTSampler", () => {
  it("draws Student t: the variance df / (df - 2) and the quantiles of jstat's t", () => {
    const draw = studentTSampler(6, seededRandom(5));
    const xs = Array.from({ length: 40000 }, draw).sort((a, b) => a - b);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(variance).toBeGreaterThan(1.4);
    expect(variance).toBeLessThan(1.6);
    expect(xs[Math.floor(0.975 * xs.length)]!).toBeCloseTo(studentTQuantile(0.975, 6), 1);
    // Fractional degrees of freedom (shape below 1) still give finite draws.
    const heavy = studentTSampler(0.8, seededRandom(6));
    expect(Array.from({ length: 1000 }, heavy).every(Number.isFinite)).toBe(true);
  });
});

describe("runLevelInterval", () => {
  const base = [
    [100, 101, 99, 102, 98],
    [104, 105, 103, 104, 106],
    [97, 96, 98, 97, 99],
  ];
  const cand = [[115, 114, 116, 113, 117]];

  it("brackets the ratio, is reproducible, and widens with run-to-run noise", () => {
    const opts = { runNoise: 0.05, runNoiseDf: 4, alternative: "greater" as const };
    const model = runLevelTest(base, cand, opts)!;
    const a = runLevelInterval(base, cand, model, { resamples: 2000, level: 0.95, random: seededRandom(1) });
    const b = runLevelInterval(base, cand, model, { resamples: 2000, level: 0.95, random: seededRandom(1) });
    expect(a).toEqual(b);
    expect(a.ratio).toBeCloseTo(model.ratio, 12);
    expect(a.low).toBeLessThan(a.ratio);
    expect(a.high).toBeGreaterThan(a.ratio);
    const quiet = runLevelTest(base, cand, { ...opts, runNoise: 0, runNoiseDf: 0 })!;
    const q = runLevelInterval(base, cand, quiet, { resamples: 2000, level: 0.95, random: seededRandom(1) });
    const loud = runLevelTest(base, cand, { ...opts, runNoise: 0.2, runNoiseDf: 100 })!;
    const l = runLevelInterval(base, cand, loud, { resamples: 2000, level: 0.95, random: seededRandom(1) });
    expect(l.high - l.low).toBeGreaterThan(2 * (q.high - q.low));
  });
});
