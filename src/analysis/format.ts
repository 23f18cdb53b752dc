/**
 * How analysis names metrics and prints numbers in one-line reasons. Reports print the same strings, so a reviewer
 * reads one vocabulary everywhere: `ttft p95 212 ms`, `decode tokens/s p50 -12%`.
 */

/** The statistics of a MetricSummary a check can read. */
export const STATS = ["p50", "p90", "p95", "p99", "mean", "max", "min"] as const;
export type Stat = (typeof STATS)[number];

export function isStat(s: string): s is Stat {
  return (STATS as readonly string[]).includes(s);
}

/** `ttft_ms` -> `ttft`, `decode_tokens_per_s` -> `decode tokens/s`, `error_rate` -> `error rate`. */
export function metricLabel(metric: string): string {
  // A trailing unit goes (`ttft_ms` -> `ttft`), unless it is the denominator of a rate (`tokens_per_s` -> `tokens/s`).
  const bare = /_per_(s|ms|us)$/.test(metric) ? metric : metric.replace(/_(ms|s|us)$/, "");
  return bare.replace(/_per_/g, "/").replace(/_/g, " ");
}

/** `ttft p95`; aggregate metrics (one value per trial) drop the stat, which would only say "mean of 1". */
export function checkLabel(metric: string, stat: Stat, aggregate: boolean): string {
  return aggregate && stat === "mean" ? metricLabel(metric) : `${metricLabel(metric)} ${stat}`;
}

/** Three significant digits, no exponent for ordinary sizes: 145, 0.145, 1234, 12.3. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1000) return String(Math.round(v));
  if (abs >= 1e-3) return String(Number(v.toPrecision(3)));
  return v.toExponential(2);
}

/** A value with its unit as a reviewer reads it: `145 ms`, `1.2%` for ratios, `125 req/s`. */
export function formatValue(v: number, unit: string): string {
  if (unit === "ratio" || unit === "fraction") return `${formatNumber(v * 100)}%`;
  if (unit === "%") return `${formatNumber(v)}%`;
  return unit ? `${formatNumber(v)} ${unit}` : formatNumber(v);
}

/** A signed relative change: +14%, +7.3%, -0.4%. Fractions in, percent out. */
export function formatChange(fraction: number): string {
  if (fraction === Number.POSITIVE_INFINITY) return "+inf%";
  if (fraction === Number.NEGATIVE_INFINITY) return "-inf%";
  const pct = fraction * 100;
  const digits = Math.abs(pct) >= 10 ? 0 : 1;
  const text = pct.toFixed(digits);
  if (Number(text) === 0) return `${(0).toFixed(digits)}%`;
  return `${pct > 0 ? "+" : ""}${text}%`;
}

/** An unsigned percent for thresholds: `10%`, `2.5%`. */
export function formatPercent(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(3))}%`;
}

/** p-values as a reviewer wants them: `p=0.004`, `p<0.001`. */
export function formatP(p: number): string {
  if (p < 0.001) return "p<0.001";
  return `p=${Number(p.toPrecision(2))}`;
}
