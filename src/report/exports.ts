import { formatNumber } from "../analysis/format.js";
import type { MetricResult, MetricSummary, Results, TestResult } from "../measure/results.js";
import { type HtmlReportOptions, renderHtml } from "./html.js";

/**
 * Results in the formats existing dashboards read. Pure: Results in, file contents out.
 *
 * - github-action-benchmark (benchmark-action/github-action-benchmark v1.22, `tool: customSmallerIsBetter` /
 *   `customBiggerIsBetter`): a JSON array of `{name, unit, value, range?, extra?}` (its src/extract.ts zod schema;
 *   `range` and `extra` are strings, shown in chart tooltips; `range` in the `± x` form it parses). One tool per file,
 *   so lower-is-better and higher-is-better metrics go to two files.
 * - Bencher Metric Format (bencher.dev/docs/reference/bencher-metric-format, JSON Schema bencher.dev/bmf.json):
 *   `{benchmark: {measure: {value, lower_value?, upper_value?}}}`; measure names are at most 64 characters.
 *
 * Names are stable across runs (dashboards key series on them): `<test>[/<scenario>]: <metric> <stat>` for
 * github-action-benchmark; benchmark `<test>[/<scenario>]` and measure `<metric>.<stat>` for Bencher (the same
 * `ttft_ms.p95` vocabulary as tokengate's checks). NaN values (a metric with no samples) are left out: neither
 * format has a way to say "no value".
 */

export interface BenchmarkEntry {
  name: string;
  unit: string;
  value: number;
  /** Spread across trials: `± <stddev of the statistic over trials>`, when the test ran 2+ trials. */
  range?: string;
  /** Tooltip text: sample counts, trials, the other percentiles. */
  extra?: string;
}

export interface BencherMetric {
  value: number;
  lower_value?: number;
  upper_value?: number;
}

export type BencherMetricFormat = Record<string, Record<string, BencherMetric>>;

/** Which statistics are exported: per-request metrics by percentile, aggregates (one value per trial) by mean. */
const REQUEST_STATS = ["p50", "p95", "p99"] as const;
type ExportStat = (typeof REQUEST_STATS)[number] | "mean";

/**
 * Metrics that describe the workload, not the server's performance (prompt and output lengths are what the suite
 * asked for): a dashboard alert on them would be noise.
 */
const WORKLOAD_METRICS = new Set(["prompt_tokens", "output_tokens"]);

/** Scenario-level exports (per prompt length, per load step) are limited to the metrics people chart per scenario. */
const SCENARIO_METRICS = new Set([
  "ttft_ms",
  "e2e_ms",
  "tpot_ms",
  "decode_tokens_per_s",
  "output_tokens_per_s",
  "requests_per_s",
]);

export interface ExportPoint {
  benchmark: string;
  metric: string;
  stat: ExportStat;
  unit: string;
  better: "lower" | "higher";
  /** One value per trial (rates over a window), not per-request percentiles. */
  aggregate: boolean;
  value: number;
  /** Per-trial values of the same statistic. */
  trials: number[];
  count: number;
  summary: MetricSummary;
}

function isAggregate(m: MetricResult): boolean {
  return m.histogram === undefined && m.trials.every((t) => t.count <= 1);
}

function pointsOf(benchmark: string, metrics: Record<string, MetricResult>, only?: Set<string>): ExportPoint[] {
  const out: ExportPoint[] = [];
  for (const [metric, m] of Object.entries(metrics)) {
    if (WORKLOAD_METRICS.has(metric) || (only && !only.has(metric))) continue;
    const aggregate = isAggregate(m);
    const stats: readonly ExportStat[] = aggregate ? ["mean"] : REQUEST_STATS;
    for (const stat of stats) {
      const value = m.summary[stat];
      if (!Number.isFinite(value)) continue;
      out.push({
        benchmark,
        metric,
        stat,
        unit: m.unit,
        better: m.better,
        aggregate,
        value,
        trials: m.trials.map((t) => t[stat]).filter(Number.isFinite),
        count: m.summary.count,
        summary: m.summary,
      });
    }
  }
  return out;
}

/** Server-side rates from llama-server's counters, as points of the test (higher is better). */
function serverPoints(test: TestResult): ExportPoint[] {
  const r = test.server?.rates;
  if (!r) return [];
  const rows: Array<[string, number | undefined]> = [
    ["server_prompt_tokens_per_s", r.promptTokensPerS],
    ["server_decode_tokens_per_s_per_slot", r.decodeTokensPerSPerSlot],
    ["server_decode_tokens_per_s", r.decodeTokensPerS],
  ];
  return rows.flatMap(([metric, value]) =>
    value !== undefined && Number.isFinite(value)
      ? [
          {
            benchmark: test.name,
            metric,
            stat: "mean" as const,
            unit: "tok/s",
            better: "higher" as const,
            aggregate: true,
            value,
            trials: [],
            count: 1,
            summary: {
              count: 1,
              mean: value,
              stddev: 0,
              min: value,
              p50: value,
              p90: value,
              p95: value,
              p99: value,
              max: value,
            },
          },
        ]
      : [],
  );
}

/** Every exported point of a run, in results order. */
export function exportPoints(results: Results): ExportPoint[] {
  const out: ExportPoint[] = [];
  for (const t of results.tests) {
    out.push(...pointsOf(t.name, t.metrics), ...serverPoints(t));
    if (t.scenarios.length >= 2)
      for (const s of t.scenarios) out.push(...pointsOf(`${t.name}/${s.name}`, s.metrics, SCENARIO_METRICS));
  }
  return out;
}

function stddev(xs: number[]): number {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

function entryName(p: ExportPoint): string {
  return p.stat === "mean" ? `${p.benchmark}: ${p.metric}` : `${p.benchmark}: ${p.metric} ${p.stat}`;
}

function entryOf(p: ExportPoint): BenchmarkEntry {
  const entry: BenchmarkEntry = { name: entryName(p), unit: p.unit, value: p.value };
  if (p.trials.length >= 2) entry.range = `± ${formatNumber(stddev(p.trials))}`;
  const s = p.summary;
  const extra = p.aggregate
    ? [p.trials.length >= 2 ? `trials: ${p.trials.map(formatNumber).join(", ")}` : "trials: 1"]
    : [
        `n=${p.count}`,
        `p50 ${formatNumber(s.p50)} p95 ${formatNumber(s.p95)} p99 ${formatNumber(s.p99)} max ${formatNumber(s.max)} ${p.unit}`,
        ...(p.trials.length >= 2 ? [`trials: ${p.trials.map(formatNumber).join(", ")}`] : []),
      ];
  entry.extra = extra.join("\n");
  return entry;
}

/** github-action-benchmark custom entries, split by direction (`customSmallerIsBetter` / `customBiggerIsBetter`). */
export function githubBenchmarkEntries(results: Results): { smaller: BenchmarkEntry[]; bigger: BenchmarkEntry[] } {
  const smaller: BenchmarkEntry[] = [];
  const bigger: BenchmarkEntry[] = [];
  for (const p of exportPoints(results)) (p.better === "lower" ? smaller : bigger).push(entryOf(p));
  return { smaller, bigger };
}

/** Bencher measure names are at most 64 characters. */
const BENCHER_MEASURE_MAX = 64;

/** Bencher Metric Format: benchmark per test (and scenario), measure per metric and statistic. */
export function bencherMetrics(results: Results): BencherMetricFormat {
  const out: BencherMetricFormat = {};
  for (const p of exportPoints(results)) {
    const measure = `${p.metric}.${p.stat}`.slice(0, BENCHER_MEASURE_MAX);
    const metric: BencherMetric = { value: p.value };
    if (p.trials.length >= 2) {
      metric.lower_value = Math.min(...p.trials);
      metric.upper_value = Math.max(...p.trials);
    }
    out[p.benchmark] ??= {};
    out[p.benchmark]![measure] = metric;
  }
  return out;
}

/** The file names the pipeline writes next to results.json. */
export const REPORT_FILES = {
  html: "report.html",
  benchmarkSmaller: "benchmark-smaller.json",
  benchmarkBigger: "benchmark-bigger.json",
  bencher: "bencher.json",
} as const;

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/**
 * Contents of report.html and the dashboard exports, by file name (REPORT_FILES). Pure: the caller writes them
 * (e.g. with writeTextAtomic into the run's out dir).
 */
export async function renderReportFiles(
  results: Results,
  opts: HtmlReportOptions = {},
): Promise<Record<(typeof REPORT_FILES)[keyof typeof REPORT_FILES], string>> {
  const gab = githubBenchmarkEntries(results);
  return {
    [REPORT_FILES.html]: await renderHtml(results, opts),
    [REPORT_FILES.benchmarkSmaller]: json(gab.smaller),
    [REPORT_FILES.benchmarkBigger]: json(gab.bigger),
    [REPORT_FILES.bencher]: json(bencherMetrics(results)),
  };
}
