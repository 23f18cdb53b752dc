import * as vega from "vega";
import type { TopLevelSpec } from "vega-lite";
import { compile } from "vega-lite";
import { decodeHistogram, valueAtPercentile } from "../measure/histogram.js";
import type { MetricResult, Results, TestResult, TimeSplit } from "../measure/results.js";

/**
 * Charts for report.html: vega-lite specs compiled and rendered to SVG in Node (vega's headless `renderer: "none"`
 * view + toSVG()), so the HTML carries finished SVG and needs no JavaScript, no CDN and no canvas package.
 *
 * The data functions (`cdfPoints`, `promptPoints`, `loadPoints`, `timelinePoints`) are pure and synchronous; the spec
 * functions turn them into vega-lite specs (undefined when there is nothing to draw); `renderSvg` is the only place
 * that runs vega. Vega escapes text it writes into SVG (titles, labels: `<` becomes `&lt;`); `renderSvg` still refuses
 * output with active elements or attributes (`activeContent`), a second line of defence for names from suite files.
 */

export interface Chart {
  /** Stable id within a report (`cdf-latency`), for anchors. */
  id: string;
  title: string;
  /** One line saying what the chart shows, for readers and screen readers. */
  description: string;
  spec: TopLevelSpec;
}

export interface RenderedChart extends Omit<Chart, "spec"> {
  svg: string;
}

const WIDTH = 300;
const HEIGHT = 190;

/** Colours by statistic, the same in every chart. */
const STAT_COLORS = { p50: "#4c78a8", p95: "#f58518", p99: "#e45756", mean: "#54a24b" } as const;

const CONFIG = {
  font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 11, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom" as const },
  title: { fontSize: 13, anchor: "start" as const },
};

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** Control characters and bidi overrides out of text that ends up in a chart (names come from suite files). */
function clean(text: string, max = 80): string {
  const s = text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, " ");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

// ---------------------------------------------------------------------------------------------------------------
// Data

/** Percentiles at which a CDF is drawn: every percent, then finer in the tail where latency problems live. */
const CDF_PERCENTILES = [...Array.from({ length: 100 }, (_, i) => i), 99.5, 99.9, 100];

/** (value, percentile) points of an encoded HDR histogram; empty for a histogram with no values. */
export function cdfPoints(encoded: string): Array<{ value: number; percentile: number }> {
  const h = decodeHistogram(encoded);
  if (h.totalCount === 0) return [];
  const out: Array<{ value: number; percentile: number }> = [];
  for (const p of CDF_PERCENTILES) {
    const v = valueAtPercentile(h, p);
    if (Number.isFinite(v)) out.push({ value: v, percentile: p });
  }
  return out;
}

export interface PromptPoint {
  promptTokens: number;
  stat: "p50" | "p95";
  ttftMs: number;
}

/** TTFT p50/p95 per prompt length, from a test's scenarios (the latency test's `prompt_N`). */
export function promptPoints(test: TestResult): PromptPoint[] {
  const out: PromptPoint[] = [];
  for (const s of test.scenarios) {
    const ttft = s.metrics.ttft_ms?.summary;
    const asked = s.params.promptTokens;
    const tokens = s.metrics.prompt_tokens?.summary.mean ?? (typeof asked === "number" ? asked : undefined);
    if (!ttft || tokens === undefined || !Number.isFinite(tokens)) continue;
    for (const stat of ["p50", "p95"] as const) {
      if (Number.isFinite(ttft[stat])) out.push({ promptTokens: tokens, stat, ttftMs: ttft[stat] });
    }
  }
  // A line needs at least two different prompt lengths.
  return new Set(out.map((p) => p.promptTokens)).size >= 2 ? out : [];
}

export interface LoadPoint {
  /** Concurrency or arrival rate. */
  load: number;
  series: string;
  value: number;
}

export interface LoadSeries {
  /** Test name, or `throughput tests` for the throughput tests taken together. */
  source: string;
  variable: "concurrency" | "rate";
  latency: LoadPoint[];
  throughput: LoadPoint[];
}

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** Points of one load level from its metrics; several runs at the same load (trials, probes) are averaged. */
function pushLoad(
  acc: Map<number, Array<Record<string, number>>>,
  load: number,
  metrics: Record<string, MetricResult>,
): void {
  const row: Record<string, number> = {};
  const put = (name: string, v: number | undefined) => {
    if (v !== undefined && Number.isFinite(v)) row[name] = v;
  };
  put("e2e p50", metrics.e2e_ms?.summary.p50);
  put("e2e p95", metrics.e2e_ms?.summary.p95);
  put("ttft p95", metrics.ttft_ms?.summary.p95);
  put("output tok/s", metrics.output_tokens_per_s?.summary.mean);
  put("requests/s", metrics.requests_per_s?.summary.mean);
  if (!Object.keys(row).length) return;
  const list = acc.get(load) ?? [];
  list.push(row);
  acc.set(load, list);
}

function toSeries(source: string, variable: LoadSeries["variable"], acc: Map<number, Array<Record<string, number>>>) {
  const latency: LoadPoint[] = [];
  const throughput: LoadPoint[] = [];
  for (const [load, rows] of [...acc.entries()].sort((a, b) => a[0] - b[0])) {
    const names = new Set(rows.flatMap((r) => Object.keys(r)));
    for (const name of names) {
      const vs = rows.map((r) => r[name]).filter((v): v is number => v !== undefined);
      if (!vs.length) continue;
      const point = { load, series: name, value: mean(vs) };
      (name.endsWith("/s") ? throughput : latency).push(point);
    }
  }
  return { source, variable, latency, throughput };
}

/**
 * Latency and throughput against load: one series per stepped test (ramp, max-load: a scenario per step with
 * `params.concurrency` or `params.rate`), and one for the throughput tests taken together when they ran at two or
 * more concurrency levels. Sources with fewer than two load levels are left out (a line needs two points).
 */
export function loadPoints(results: Results): LoadSeries[] {
  const out: LoadSeries[] = [];
  const throughputTests = new Map<number, Array<Record<string, number>>>();
  for (const t of results.tests) {
    const steps = new Map<number, Array<Record<string, number>>>();
    let variable: LoadSeries["variable"] = "concurrency";
    for (const s of t.scenarios) {
      const c = s.params.concurrency;
      const r = s.params.rate;
      if (typeof c === "number") pushLoad(steps, c, s.metrics);
      else if (typeof r === "number") {
        variable = "rate";
        pushLoad(steps, r, s.metrics);
      }
    }
    if (t.kind === "throughput" && typeof t.params.concurrency === "number") {
      pushLoad(throughputTests, t.params.concurrency, t.metrics);
      continue;
    }
    if (steps.size >= 2) out.push(toSeries(t.name, variable, steps));
  }
  if (throughputTests.size >= 2) out.push(toSeries("throughput tests", "concurrency", throughputTests));
  return out;
}

export interface TimelinePoint {
  s: number;
  series: "busy slots" | "deferred requests";
  value: number;
}

/** Busy slots and deferred requests over a test, from the server sampler's timeline. */
export function timelinePoints(test: TestResult): TimelinePoint[] {
  const tl = test.server?.load?.timeline ?? [];
  const out: TimelinePoint[] = [];
  for (const p of tl) {
    const s = p.tMs / 1000;
    if (p.busySlots !== undefined) out.push({ s, series: "busy slots", value: p.busySlots });
    if (p.deferred !== undefined) out.push({ s, series: "deferred requests", value: p.deferred });
  }
  return out.length >= 2 ? out : [];
}

// ---------------------------------------------------------------------------------------------------------------
// Specs

const CDF_METRICS = [
  ["ttft_ms", "TTFT"],
  ["e2e_ms", "end-to-end"],
  ["itl_ms", "inter-token"],
] as const;

/** CDFs of TTFT, e2e and ITL from the stored HDR histograms, side by side with their own x scales. */
export function latencyCdfSpec(test: TestResult): TopLevelSpec | undefined {
  const panels = CDF_METRICS.flatMap(([key, label]) => {
    const h = test.metrics[key]?.histogram;
    const values = h ? cdfPoints(h) : [];
    if (values.length < 2) return [];
    return [
      {
        title: `${label} (ms)`,
        width: 220,
        height: 170,
        data: { values },
        mark: { type: "line" as const, interpolate: "step-after" as const, color: STAT_COLORS.p50, strokeWidth: 2 },
        encoding: {
          x: { field: "value", type: "quantitative" as const, title: "ms", scale: { zero: true } },
          y: {
            field: "percentile",
            type: "quantitative" as const,
            title: "percentile",
            scale: { domain: [0, 100] },
          },
        },
      },
    ];
  });
  if (!panels.length) return undefined;
  return {
    $schema: SCHEMA,
    config: CONFIG,
    hconcat: panels,
    resolve: { scale: { x: "independent" } },
  };
}

/** TTFT p50/p95 against prompt length (the seed's "latency by prompt length"). */
export function ttftByPromptSpec(test: TestResult): TopLevelSpec | undefined {
  const values = promptPoints(test);
  if (!values.length) return undefined;
  return {
    $schema: SCHEMA,
    config: CONFIG,
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "promptTokens", type: "quantitative", title: "prompt tokens" },
      y: { field: "ttftMs", type: "quantitative", title: "TTFT (ms)" },
      color: {
        field: "stat",
        type: "nominal",
        title: null,
        scale: { domain: ["p50", "p95"], range: [STAT_COLORS.p50, STAT_COLORS.p95] },
      },
    },
  };
}

const LOAD_COLORS = {
  domain: ["e2e p50", "e2e p95", "ttft p95"],
  range: [STAT_COLORS.p50, STAT_COLORS.p95, "#72b7b2"],
};
const THROUGHPUT_COLORS = { domain: ["output tok/s", "requests/s"], range: ["#54a24b", "#b279a2"] };

/** Latency (left) and throughput (right) against load for one source. */
export function latencyVsLoadSpec(series: LoadSeries): TopLevelSpec | undefined {
  if (!series.latency.length && !series.throughput.length) return undefined;
  const xTitle = series.variable === "rate" ? "arrivals per second" : "concurrent requests";
  const x = {
    field: "load",
    type: "quantitative" as const,
    title: xTitle,
    scale: series.variable === "concurrency" ? { type: "log" as const, base: 2 } : { zero: true },
    axis: series.variable === "concurrency" ? { values: [...new Set(series.latency.map((p) => p.load))] } : {},
  };
  const panels = [];
  if (series.latency.length)
    panels.push({
      title: "latency (ms)",
      width: WIDTH,
      height: HEIGHT,
      data: { values: series.latency },
      mark: { type: "line" as const, point: true },
      encoding: {
        x,
        y: { field: "value", type: "quantitative" as const, title: "ms" },
        color: { field: "series", type: "nominal" as const, title: null, scale: LOAD_COLORS },
      },
    });
  if (series.throughput.length)
    panels.push({
      title: "throughput",
      width: WIDTH,
      height: HEIGHT,
      data: { values: series.throughput },
      mark: { type: "line" as const, point: true },
      encoding: {
        x,
        y: { field: "value", type: "quantitative" as const, title: "per second" },
        color: { field: "series", type: "nominal" as const, title: null, scale: THROUGHPUT_COLORS },
      },
    });
  return { $schema: SCHEMA, config: CONFIG, hconcat: panels, resolve: { scale: { color: "independent" } } };
}

/** Busy slots and deferred requests over the test, with the slot count as a rule. */
export function slotTimelineSpec(test: TestResult): TopLevelSpec | undefined {
  const values = timelinePoints(test);
  if (!values.length) return undefined;
  const slots = test.server?.load?.slots;
  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>["layer"]> = [
    {
      data: { values },
      mark: { type: "line", interpolate: "step-after" },
      encoding: {
        x: { field: "s", type: "quantitative", title: "seconds into the test" },
        y: { field: "value", type: "quantitative", title: "requests", scale: { zero: true } },
        color: {
          field: "series",
          type: "nominal",
          title: null,
          scale: { domain: ["busy slots", "deferred requests"], range: [STAT_COLORS.p50, STAT_COLORS.p99] },
        },
      },
    },
  ];
  if (slots !== undefined)
    layers.push({
      data: { values: [{ slots }] },
      mark: { type: "rule", strokeDash: [4, 3], color: "#888" },
      encoding: { y: { field: "slots", type: "quantitative" } },
    });
  return { $schema: SCHEMA, config: CONFIG, width: WIDTH * 2, height: 150, layer: layers };
}

const PHASES = ["waiting", "prompt processing", "decoding"] as const;

/** Where a median request's time goes, one bar per test. */
export function timeSplitSpec(splits: TimeSplit[]): TopLevelSpec | undefined {
  const values = splits.flatMap((s, i) =>
    (
      [
        ["waiting", s.queueMs ?? 0],
        ["prompt processing", s.promptMs],
        ["decoding", s.decodeMs],
      ] as const
    ).map(([phase, ms]) => ({ test: clean(s.test), phase, ms, order: PHASES.indexOf(phase), row: i })),
  );
  if (!values.length) return undefined;
  return {
    $schema: SCHEMA,
    config: CONFIG,
    width: WIDTH * 2,
    height: { step: 26 },
    data: { values },
    mark: { type: "bar" },
    encoding: {
      y: { field: "test", type: "nominal", title: null, sort: { field: "row" } },
      x: { field: "ms", type: "quantitative", title: "ms (median request)", stack: "zero" },
      color: {
        field: "phase",
        type: "nominal",
        title: null,
        scale: { domain: [...PHASES], range: ["#e45756", "#f58518", "#4c78a8"] },
      },
      order: { field: "order", type: "quantitative" },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

/** Elements that could run code, load something or navigate; vega writes none of them for our specs. */
const ACTIVE_TAGS = new Set([
  "script",
  "foreignobject",
  "iframe",
  "image",
  "use",
  "a",
  "object",
  "embed",
  "animate",
  "set",
]);
const TAG = /<\s*([A-Za-z][\w:.-]*)([^>]*)>/g;
const ATTR = /([\w:.-]+)\s*=\s*"([^"]*)"/g;

/**
 * Why an SVG string is unsafe to inline, or undefined. Looks at element and attribute NAMES (and url() targets in
 * attribute values) only: text and attribute values are escaped by vega, so `onerror=` inside a title is inert text.
 */
export function activeContent(svg: string): string | undefined {
  for (const tag of svg.matchAll(TAG)) {
    const name = tag[1]!.toLowerCase();
    if (ACTIVE_TAGS.has(name)) return `<${name}> element`;
    for (const attr of (tag[2] ?? "").matchAll(ATTR)) {
      const a = attr[1]!.toLowerCase();
      if (a.startsWith("on") || a.endsWith("href")) return `${a} attribute on <${name}>`;
      if (/url\(\s*['"]?\s*[a-z][a-z0-9+.-]*:/i.test(attr[2] ?? "")) return `external url() in ${a} on <${name}>`;
    }
  }
  return undefined;
}

/** Compiles a vega-lite spec and renders it to an SVG string (no DOM, no canvas). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    const unsafe = activeContent(svg);
    if (unsafe) throw new Error(`chart SVG contains active content (${unsafe})`);
    return svg;
  } finally {
    view.finalize();
  }
}

export interface ReportCharts {
  /** Per test name, in display order. */
  byTest: Map<string, RenderedChart[]>;
  /** Charts over the whole run (latency vs load of the throughput tests, the time split). */
  run: RenderedChart[];
  /** Charts that failed to render (the report says so instead of failing). */
  failed: Array<{ id: string; error: string }>;
}

/** Every chart of a report, rendered. Never throws for a chart: a failed one is listed in `failed`. */
export async function renderCharts(results: Results): Promise<ReportCharts> {
  const out: ReportCharts = { byTest: new Map(), run: [], failed: [] };
  const render = async (c: Chart | undefined, into: RenderedChart[]) => {
    if (!c) return;
    try {
      const { spec, ...rest } = c;
      into.push({ ...rest, svg: await renderSvg(spec) });
    } catch (err) {
      out.failed.push({ id: c.id, error: err instanceof Error ? err.message : String(err) });
    }
  };
  const chart = (id: string, title: string, description: string, spec: TopLevelSpec | undefined) =>
    spec ? { id, title, description, spec } : undefined;

  const series = loadPoints(results);
  for (const [i, t] of results.tests.entries()) {
    const list: RenderedChart[] = [];
    const slug = `t${i}`;
    const name = clean(t.name);
    const load = series.find((s) => s.source === t.name);
    if (load)
      await render(
        chart(
          `${slug}-load`,
          `Latency and throughput vs load (${name})`,
          `Per step: e2e p50/p95 and TTFT p95 (left), output tokens/s and requests/s (right) against ${load.variable}.`,
          latencyVsLoadSpec(load),
        ),
        list,
      );
    await render(
      chart(
        `${slug}-prompt`,
        `TTFT by prompt length (${name})`,
        "TTFT p50 and p95 per prompt length (actual prompt tokens as the server counted them).",
        ttftByPromptSpec(t),
      ),
      list,
    );
    await render(
      chart(
        `${slug}-cdf`,
        `Latency distribution (${name})`,
        "Cumulative distribution of per-request TTFT, end-to-end latency and inter-token gaps, from the HDR histograms.",
        latencyCdfSpec(t),
      ),
      list,
    );
    await render(
      chart(
        `${slug}-slots`,
        `Server slots over time (${name})`,
        "Busy slots (/slots) and deferred requests (/metrics) sampled during the test; dashed: the slot count.",
        slotTimelineSpec(t),
      ),
      list,
    );
    out.byTest.set(t.name, list);
  }
  const combined = series.find((s) => s.source === "throughput tests");
  if (combined)
    await render(
      chart(
        "run-load",
        "Latency and throughput vs concurrency (throughput tests)",
        "One point per throughput test: e2e p50/p95 and TTFT p95 (left), output tokens/s and requests/s (right).",
        latencyVsLoadSpec(combined),
      ),
      out.run,
    );
  if (results.analysis?.timeSplits.length)
    await render(
      chart(
        "run-split",
        "Where the time goes",
        "Median request split into waiting (client TTFT minus server prompt time), prompt processing and decoding.",
        timeSplitSpec(results.analysis.timeSplits),
      ),
      out.run,
    );
  return out;
}
