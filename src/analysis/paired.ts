/**
 * Statistics of the same-runner A/B (tokengate ab) and the detectable change of any comparison. Pure.
 *
 * In an A/B both arms run on one machine in one job, interleaved (A B B A A B ...), each run in a freshly started
 * server. Run i of A and run i of B are a pair: adjacent in time, they share whatever the machine was doing then (a
 * neighbour, thermal state, a slow disk). The paired test works on the differences of their levels,
 * d_i = ln(median of B's trials in pair i) - ln(median of A's trials in pair i): slow drift and a busy minute cancel
 * within a pair, and the spread of the d_i measures everything that does not cancel (trial noise and the process's
 * own run-to-run noise) without an assumed prior. A one-sided Student t test on the mean of d (n - 1 degrees of
 * freedom) is exact for normal d and the usual choice for few pairs (docs/verdicts.md "Same-runner A/B").
 */
import { type RatioInterval, studentTCdf, studentTQuantile } from "./stats.js";

export interface PairedResult {
  /** Pairs with a positive value on both sides. */
  pairs: number;
  /** mean(d): ln of the geometric-mean ratio B / A. */
  logRatio: number;
  ratio: number;
  /** sd(d) / sqrt(pairs). */
  se: number;
  /** sd of the d_i (ln scale). */
  sdDiff: number;
  df: number;
  /** One-sided p-value for the alternative (B worse). */
  pValue: number;
}

function medianOf(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The paired test on per-trial values of each run, A's runs and B's runs in pair order (`a[i]` and `b[i]` ran next to
 * each other). `greater`: B's values are larger (worse for latencies); `less`: smaller (worse for rates). Undefined
 * with fewer than 2 usable pairs.
 */
export function pairedRunTest(
  a: readonly (readonly number[])[],
  b: readonly (readonly number[])[],
  alternative: "greater" | "less",
): PairedResult | undefined {
  const d: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const xa = (a[i] ?? []).filter((v) => Number.isFinite(v) && v > 0);
    const xb = (b[i] ?? []).filter((v) => Number.isFinite(v) && v > 0);
    if (xa.length === 0 || xb.length === 0) continue;
    d.push(Math.log(medianOf(xb)) - Math.log(medianOf(xa)));
  }
  const n = d.length;
  if (n < 2) return undefined;
  const mean = d.reduce((s, x) => s + x, 0) / n;
  const sdDiff = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  const se = sdDiff / Math.sqrt(n);
  const df = n - 1;
  const worse = alternative === "greater" ? mean : -mean;
  let pValue: number;
  if (se > 0) pValue = 1 - studentTCdf(worse / se, df);
  else pValue = worse > 0 ? 0 : 1;
  return { pairs: n, logRatio: mean, ratio: Math.exp(mean), se, sdDiff, df, pValue: Math.min(1, Math.max(0, pValue)) };
}

/** Two-sided interval of the ratio B / A at `level` from the paired t model (no resampling: `resamples` is 0). */
export function pairedInterval(r: PairedResult, level: number): RatioInterval {
  const q = studentTQuantile(1 - (1 - level) / 2, r.df);
  return {
    ratio: r.ratio,
    low: Math.exp(r.logRatio - q * r.se),
    high: Math.exp(r.logRatio + q * r.se),
    level,
    resamples: 0,
  };
}

/**
 * The smallest change in the worse direction that a one-sided t test with standard error `se` (ln scale) and `df`
 * degrees of freedom detects with probability `power` at significance `alpha`: exp((t_{1-alpha} + t_{power}) * se) - 1,
 * as a positive fraction of the baseline whatever the direction (a 4.1% slowdown or a 4.1% drop in tok/s).
 * Infinite when there is no estimate of the noise (se not finite).
 */
export function detectableChange(se: number, df: number, alpha: number, power: number): number {
  if (!Number.isFinite(se) || !(df > 0)) return Number.POSITIVE_INFINITY;
  const k = studentTQuantile(1 - alpha, df) + studentTQuantile(power, df);
  return Math.expm1(k * se);
}

/**
 * Pairs an A/B of this noise (sd of the pair differences, ln scale) needs so that a change of `target` (a fraction)
 * is detected with `power` at `alpha`; undefined when more than `max` pairs would be needed.
 */
export function pairsNeeded(
  sdDiff: number,
  target: number,
  alpha: number,
  power: number,
  max = 100,
): number | undefined {
  // Start just below the normal approximation: t quantiles only make n larger, and each costs an inverse beta.
  const z = studentTQuantile(1 - alpha, Number.POSITIVE_INFINITY) + studentTQuantile(power, Number.POSITIVE_INFINITY);
  const guess = ((z * sdDiff) / Math.log1p(target)) ** 2;
  if (!Number.isFinite(guess) || guess > max) return undefined;
  for (let n = Math.max(2, Math.floor(guess)); n <= max; n++) {
    if (detectableChange(sdDiff / Math.sqrt(n), n - 1, alpha, power) <= target) return n;
  }
  return undefined;
}
