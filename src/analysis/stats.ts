/**
 * The statistics behind baseline verdicts. Pure functions of numbers; no I/O, no clocks, no Math.random.
 *
 * Libraries first (docs/verdicts.md says why each):
 * - simple-statistics: the Wilcoxon rank-sum statistic (with mid-ranks for ties), medians, quantiles, resampling.
 * - jstat: the normal distribution (CDF and quantile) for the large-sample approximation and power estimates.
 * - @stdlib/stats-padjust: Holm's step-down adjustment.
 * Hand-rolled, because no installed or registry library has them: the exact permutation distribution of the rank sum
 * under ties (small samples, where the normal approximation is poor), the seeded bootstrap of a ratio of medians
 * and the "how many more trials" estimate.
 */
import padjust from "@stdlib/stats-padjust";
import jStat from "jstat";
import { median, quantileSorted, sampleWithReplacement, wilcoxonRankSum } from "simple-statistics";
import { createRng } from "../util/rng.js";

// ---------------------------------------------------------------------------------------------------------------
// Seeded randomness

/** FNV-1a of a string: a stable 32-bit seed from a name (`seed:test:metric`), so each metric gets its own stream. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A uniform [0, 1) source from the project's seeded generator (src/util/rng.ts, sfc32), seeded by a number or a name,
 * reproducible on every platform (unlike Math.random, which cannot be seeded).
 */
export function seededRandom(seed: number | string): () => number {
  const rng = createRng(typeof seed === "string" ? hashSeed(seed) : seed >>> 0);
  return () => rng.next();
}

/** Standard normal draws (Box-Muller) from a seeded uniform source: for synthetic test data and simulations. */
export function seededNormal(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Mann-Whitney U / Wilcoxon rank-sum

export type Alternative = "greater" | "less" | "two-sided";

export interface RankTestResult {
  /** Mann-Whitney U of the candidate: the number of (baseline, candidate) pairs where the candidate is larger (ties 1/2). */
  u: number;
  /** Wilcoxon rank sum of the candidate (mid-ranks). */
  w: number;
  n1: number;
  n2: number;
  /** p-value for the alternative: `greater` = the candidate tends to be larger than the baseline. */
  pValue: number;
  alternative: Alternative;
  /** `exact`: permutation distribution of the rank sum (ties kept); `normal`: tie-corrected normal approximation. */
  method: "exact" | "normal";
}

/** Samples up to this many values in total use the exact distribution (the DP below costs ~N^3 / 2 steps). */
export const EXACT_MAX_N = 60;

/** Mid-ranks (1-based; tied values share the mean of their ranks), in input order. */
export function midranks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(values.length);
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    const rank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) ranks[order[k]![1]] = rank;
    i = j + 1;
  }
  return ranks;
}

/**
 * Mann-Whitney U test (= Wilcoxon rank-sum) of `candidate` against `baseline`.
 * Exact p-values up to EXACT_MAX_N values in total: the permutation distribution of the candidate's rank sum, counted
 * by dynamic programming over the observed (doubled, so integer) mid-ranks, which stays exact with ties (as R's
 * coin::wilcox_test(distribution="exact") does; scipy's method="exact" ignores ties). Above that, the normal
 * approximation with tie correction and continuity correction (scipy's method="asymptotic").
 */
export function mannWhitney(
  baseline: readonly number[],
  candidate: readonly number[],
  alternative: Alternative = "two-sided",
  method: "auto" | "exact" | "normal" = "auto",
): RankTestResult {
  const n1 = baseline.length;
  const n2 = candidate.length;
  if (n1 === 0 || n2 === 0) throw new RangeError("mannWhitney needs values on both sides");
  // The observed statistic from simple-statistics (mid-ranks for ties); its null distribution is ours.
  const w = wilcoxonRankSum(candidate, baseline);
  const u = w - (n2 * (n2 + 1)) / 2;
  const n = n1 + n2;
  const pooled = [...baseline, ...candidate];
  const pOf = (greater: () => number, less: () => number): number => {
    if (alternative === "greater") return greater();
    if (alternative === "less") return less();
    return Math.min(1, 2 * Math.min(greater(), less()));
  };
  if (method === "exact" || (method === "auto" && n <= EXACT_MAX_N)) {
    const dist = rankSumDistribution(
      midranks(pooled).map((r) => Math.round(r * 2)),
      n2,
    );
    const w2 = Math.round(w * 2);
    let ge = 0;
    let le = 0;
    for (let s = 0; s < dist.counts.length; s++) {
      const c = dist.counts[s]!;
      if (s >= w2) ge += c;
      if (s <= w2) le += c;
    }
    return {
      u,
      w,
      n1,
      n2,
      alternative,
      method: "exact",
      pValue: clampP(
        pOf(
          () => ge / dist.total,
          () => le / dist.total,
        ),
      ),
    };
  }
  const mean = (n1 * n2) / 2;
  const sd = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm(pooled) / (n * (n - 1))));
  if (sd === 0) return { u, w, n1, n2, alternative, method: "normal", pValue: 1 };
  const upper = 1 - jStat.normal.cdf((u - mean - 0.5) / sd, 0, 1);
  const lower = jStat.normal.cdf((u - mean + 0.5) / sd, 0, 1);
  return {
    u,
    w,
    n1,
    n2,
    alternative,
    method: "normal",
    pValue: clampP(
      pOf(
        () => upper,
        () => lower,
      ),
    ),
  };
}

/** Counts of every (doubled) rank sum over all C(N, k) ways to pick the candidate's k positions. */
function rankSumDistribution(doubledRanks: readonly number[], k: number): { counts: Float64Array; total: number } {
  const maxSum = doubledRanks.reduce((a, b) => a + b, 0);
  // ways[j][s]: subsets of size j of the ranks seen so far with doubled sum s. Counts stay exact in float64 while
  // C(N, k) < 2^53 (C(60, 30) ~ 1.2e17 exceeds it slightly; relative error ~1e-16 is irrelevant for a p-value).
  const ways: Float64Array[] = Array.from({ length: k + 1 }, () => new Float64Array(maxSum + 1));
  ways[0]![0] = 1;
  let seen = 0;
  for (const r of doubledRanks) {
    seen++;
    for (let j = Math.min(seen, k); j >= 1; j--) {
      const from = ways[j - 1]!;
      const to = ways[j]!;
      for (let s = maxSum; s >= r; s--) {
        const add = from[s - r]!;
        if (add !== 0) to[s] = to[s]! + add;
      }
    }
  }
  const counts = ways[k]!;
  let total = 0;
  for (const c of counts) total += c;
  return { counts, total };
}

/** Sum over tie groups of t^3 - t (the tie correction of the rank-sum variance). */
function tieTerm(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  let term = 0;
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[i]) j++;
    const t = j - i + 1;
    term += t * t * t - t;
    i = j + 1;
  }
  return term;
}

function clampP(p: number): number {
  return Math.min(1, Math.max(0, p));
}

/** The smallest one-sided p-value n1 vs n2 values can give (all of one side above the other): 1 / C(n1+n2, n1). */
export function minOneSidedP(n1: number, n2: number): number {
  return 1 / binomial(n1 + n2, Math.min(n1, n2));
}

export function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

// ---------------------------------------------------------------------------------------------------------------
// Bootstrap confidence interval of a ratio of medians

export interface RatioInterval {
  /** median(candidate) / median(baseline). */
  ratio: number;
  low: number;
  high: number;
  level: number;
  resamples: number;
}

/**
 * Percentile bootstrap of median(candidate) / median(baseline): both sides resampled with replacement, independently,
 * `resamples` times, from a seeded source. With 5 values per side the bootstrap medians take few distinct values, so
 * the interval is coarse but honest; it widens, as it should, when trials disagree.
 */
export function bootstrapMedianRatio(
  baseline: readonly number[],
  candidate: readonly number[],
  options: { resamples: number; level: number; random: () => number },
): RatioInterval {
  const { resamples, level, random } = options;
  const ratio = ratioOf(median([...candidate]), median([...baseline]));
  const ratios = new Float64Array(resamples);
  const x = [...baseline];
  const y = [...candidate];
  for (let b = 0; b < resamples; b++) {
    ratios[b] = ratioOf(
      median(sampleWithReplacement(y, y.length, random)),
      median(sampleWithReplacement(x, x.length, random)),
    );
  }
  const sorted = Array.from(ratios).sort((a, b) => a - b);
  const tail = (1 - level) / 2;
  return { ratio, low: quantileSorted(sorted, tail), high: quantileSorted(sorted, 1 - tail), level, resamples };
}

/** a / b for non-negative metrics: 0/0 is "no change" (1), x/0 is an infinite increase. */
export function ratioOf(a: number, b: number): number {
  if (b === 0) return a === 0 ? 1 : Number.POSITIVE_INFINITY;
  return a / b;
}

// ---------------------------------------------------------------------------------------------------------------
// Multiple comparisons

/** Holm-adjusted p-values (same order as given). Controls the family-wise error rate under any dependence. */
export function holmAdjust(pValues: readonly number[]): number[] {
  if (pValues.length === 0) return [];
  return padjust([...pValues], "holm");
}

// ---------------------------------------------------------------------------------------------------------------
// How much more evidence

export interface TrialsNeeded {
  /** Trials per side that would make this comparison decisive; Infinity when no finite count is plausible. */
  perSide: number;
  /** What limits it: the smallest p a rank test can give at this size, or the noise relative to the change. */
  limitedBy: "rank-test resolution" | "noise" | "min trials";
}

/**
 * Trials per side needed to find the observed change significant at `alphaEach` with the given power (default 0.8).
 * Two constraints: (1) the exact rank test's smallest p-value, 1 / C(2n, n), must be at most alphaEach; (2) the usual
 * two-sample size for a shift of |ln ratio| with the pooled SD of ln per-trial values, inflated by pi/3 (the rank
 * test's asymptotic relative efficiency vs the t-test is 3/pi under normality). An estimate to plan by, not a promise.
 */
export function trialsNeeded(
  baseline: readonly number[],
  candidate: readonly number[],
  options: { alphaEach: number; minTrials: number; power?: number },
): TrialsNeeded {
  const { alphaEach, minTrials, power = 0.8 } = options;
  let byResolution = 2;
  while (1 / binomial(2 * byResolution, byResolution) > alphaEach) byResolution++;
  let byNoise = 0;
  const logs = (v: readonly number[]) => v.filter((x) => x > 0).map(Math.log);
  const lx = logs(baseline);
  const ly = logs(candidate);
  const mx = median([...baseline]);
  const my = median([...candidate]);
  const shift = mx > 0 && my > 0 ? Math.abs(Math.log(my / mx)) : 0;
  const sd = pooledSd(lx, ly);
  if (shift > 0 && sd > 0) {
    const z = jStat.normal.inv(1 - alphaEach, 0, 1) + jStat.normal.inv(power, 0, 1);
    byNoise = Math.ceil(((2 * z * z * sd * sd) / (shift * shift)) * (Math.PI / 3));
  } else if (shift === 0 && sd > 0) {
    byNoise = Number.POSITIVE_INFINITY;
  }
  const perSide = Math.max(byResolution, byNoise, minTrials);
  const limitedBy = perSide === minTrials ? "min trials" : perSide === byNoise ? "noise" : "rank-test resolution";
  return { perSide, limitedBy };
}

function pooledSd(a: readonly number[], b: readonly number[]): number {
  const ss = (v: readonly number[]) => {
    if (v.length < 2) return { ss: 0, df: 0 };
    const m = v.reduce((s, x) => s + x, 0) / v.length;
    return { ss: v.reduce((s, x) => s + (x - m) ** 2, 0), df: v.length - 1 };
  };
  const sa = ss(a);
  const sb = ss(b);
  const df = sa.df + sb.df;
  return df > 0 ? Math.sqrt((sa.ss + sb.ss) / df) : 0;
}
