import * as hdr from "hdr-histogram-js";
import type { MetricSummary } from "./results.js";

/**
 * The one module that owns HDR histogram settings and encoding (hdr-histogram-js: the HdrHistogram algorithm used by
 * wrk2, autocannon and Gatling; fixed relative error, mergeable, compact to store).
 *
 * Settings: 3 significant digits (values within 0.1%), auto-resizing, values stored as integers in thousandths of the
 * metric's unit (a latency in ms is stored in µs; a rate in tok/s is stored in milli-tok/s), so sub-unit values keep
 * their precision. Change nothing here without bumping RESULTS_SCHEMA_VERSION: stored histograms depend on it.
 */
export const HISTOGRAM_SCALE = 1000;
const SIGNIFICANT_DIGITS = 3;

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    autoResize: true,
    bitBucketSize: 32,
  });
}

/** Records a value in the metric's own unit (negative values are clamped to 0: a clock never runs backwards). */
export function recordValue(h: Histogram, value: number): void {
  h.recordValue(Math.max(0, Math.round(value * HISTOGRAM_SCALE)));
}

export function histogramOf(values: Iterable<number>): Histogram {
  const h = newHistogram();
  for (const v of values) recordValue(h, v);
  return h;
}

/** The value at percentile `p` (0..100), in the metric's unit. */
export function valueAtPercentile(h: Histogram, p: number): number {
  return h.getValueAtPercentile(p) / HISTOGRAM_SCALE;
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(encoded: string): Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 32, false);
}

/**
 * Summary of per-request values: percentiles from the HDR histogram (what every report and baseline comparison
 * reads, so the stored histogram and the summary agree), mean / stddev / min / max exact.
 */
export function summarize(values: number[], h: Histogram = histogramOf(values)): MetricSummary {
  const n = values.length;
  if (n === 0)
    return {
      count: 0,
      mean: Number.NaN,
      stddev: Number.NaN,
      min: Number.NaN,
      p50: Number.NaN,
      p90: Number.NaN,
      p95: Number.NaN,
      p99: Number.NaN,
      max: Number.NaN,
    };
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  // HDR returns a bucket's highest equivalent value (up to 0.1% above the sample); clamping to the exact min/max
  // keeps percentiles inside the data (one sample of 100 ms reads 100, not 100.03).
  const pct = (p: number) => Math.min(max, Math.max(min, valueAtPercentile(h, p)));
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return {
    count: n,
    mean,
    // Sample standard deviation (n-1): these are samples of the server's behaviour, not the whole population.
    stddev: n > 1 ? Math.sqrt(ss / (n - 1)) : 0,
    min,
    p50: pct(50),
    p90: pct(90),
    p95: pct(95),
    p99: pct(99),
    max,
  };
}

/** A single aggregate value (a rate over a window) as a summary. */
export function pointSummary(value: number): MetricSummary {
  return { count: 1, mean: value, stddev: 0, min: value, p50: value, p90: value, p95: value, p99: value, max: value };
}
