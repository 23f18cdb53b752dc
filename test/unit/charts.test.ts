import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { encodeHistogram, histogramOf } from "../../src/measure/histogram.js";
import type { Results } from "../../src/measure/results.js";
import {
  activeContent,
  cdfPoints,
  latencyCdfSpec,
  loadPoints,
  promptPoints,
  renderCharts,
  renderSvg,
  slotTimelineSpec,
  timelinePoints,
  ttftByPromptSpec,
} from "../../src/report/charts.js";
import { resultsSchema } from "../../src/report/results-schema.js";

const results = resultsSchema.parse(
  JSON.parse(readFileSync(new URL("../fixtures/results/quick.json", import.meta.url), "utf8")),
) as Results;
const test = (name: string) => results.tests.find((t) => t.name === name)!;

describe("chart data", () => {
  it("a CDF from an encoded HDR histogram rises from the minimum to the maximum, in step with the summary", () => {
    const values = Array.from({ length: 1000 }, (_, i) => i + 1);
    const pts = cdfPoints(encodeHistogram(histogramOf(values)));
    expect(pts[0]!.percentile).toBe(0);
    expect(pts.at(-1)!.percentile).toBe(100);
    for (let i = 1; i < pts.length; i++) {
      expect(pts[i]!.value).toBeGreaterThanOrEqual(pts[i - 1]!.value);
      expect(pts[i]!.percentile).toBeGreaterThan(pts[i - 1]!.percentile);
    }
    const p50 = pts.find((p) => p.percentile === 50)!.value;
    expect(p50).toBeGreaterThan(495);
    expect(p50).toBeLessThan(505);
    expect(pts.at(-1)!.value).toBeCloseTo(1000, -1);
    expect(cdfPoints(encodeHistogram(histogramOf([])))).toEqual([]);
  });

  it("the fixture's stored histogram gives the same p95 as its summary", () => {
    const m = test("latency").metrics.ttft_ms!;
    const p95 = cdfPoints(m.histogram!).find((p) => p.percentile === 95)!.value;
    expect(p95).toBeCloseTo(m.summary.p95, 0);
  });

  it("TTFT by prompt length needs two or more prompt lengths", () => {
    const pts = promptPoints(test("latency"));
    expect(new Set(pts.map((p) => p.promptTokens)).size).toBe(3);
    expect(pts.filter((p) => p.stat === "p95")).toHaveLength(3);
    // The ramp's steps all use one prompt length: no chart.
    expect(promptPoints(test("ramp"))).toEqual([]);
    expect(ttftByPromptSpec(test("ramp"))).toBeUndefined();
  });

  it("latency vs load from ramp steps, and from throughput tests at two or more concurrency levels", () => {
    const series = loadPoints(results);
    const ramp = series.find((s) => s.source === "ramp")!;
    expect(ramp.variable).toBe("concurrency");
    expect([...new Set(ramp.latency.map((p) => p.load))]).toEqual([1, 2, 4, 8]);
    const step8 = test("ramp").scenarios.find((s) => s.params.concurrency === 8)!;
    expect(ramp.latency.find((p) => p.load === 8 && p.series === "e2e p95")!.value).toBe(
      step8.metrics.e2e_ms!.summary.p95,
    );
    expect(ramp.throughput.find((p) => p.load === 8 && p.series === "output tok/s")!.value).toBe(
      step8.metrics.output_tokens_per_s!.summary.mean,
    );
    // One throughput test: a single point is no line.
    expect(series.find((s) => s.source === "throughput tests")).toBeUndefined();
    const two: Results = structuredClone(results);
    const extra = structuredClone(two.tests[1]!);
    extra.name = "throughput-2";
    extra.params.concurrency = 2;
    two.tests.push(extra);
    const combined = loadPoints(two).find((s) => s.source === "throughput tests")!;
    expect([...new Set(combined.latency.map((p) => p.load))].sort()).toEqual([2, 8]);
  });

  it("the slot timeline comes from the server sampler", () => {
    const pts = timelinePoints(test("throughput"));
    const tl = test("throughput").server!.load!.timeline;
    expect(pts.filter((p) => p.series === "busy slots")).toHaveLength(
      tl.filter((s) => s.busySlots !== undefined).length,
    );
    expect(Math.max(...pts.filter((p) => p.series === "busy slots").map((p) => p.value))).toBeLessThanOrEqual(4);
    const noServer = structuredClone(test("throughput"));
    delete noServer.server;
    expect(slotTimelineSpec(noServer)).toBeUndefined();
  });
});

describe("rendering", () => {
  it("renders SVG with marks and escapes hostile names", async () => {
    const hostile = structuredClone(test("latency"));
    hostile.name = `<script>alert(1)</script><img src=x onerror=alert(2)>`;
    const spec = latencyCdfSpec(hostile)!;
    (spec as { title?: string }).title = hostile.name;
    const svg = await renderSvg(spec);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toMatch(/class="mark-line/);
    expect(svg).not.toMatch(/<script|<img/i);
    expect(svg).toContain("&lt;script&gt;");
    expect(activeContent(svg)).toBeUndefined();
  });

  it("the active-content guard looks at element and attribute names, not at escaped text", () => {
    expect(activeContent("<svg><text>onerror=alert(1) &lt;script&gt;</text></svg>")).toBeUndefined();
    expect(activeContent('<svg><g aria-label="x onload=y"></g></svg>')).toBeUndefined();
    expect(activeContent("<svg><script>alert(1)</script></svg>")).toBe("<script> element");
    expect(activeContent('<svg><g onload="x()"></g></svg>')).toBe("onload attribute on <g>");
    expect(activeContent('<svg><a xlink:href="https://x"></a></svg>')).toBe("<a> element");
    expect(activeContent('<svg><path style="fill:url(https://x/y)"/></svg>')).toMatch(/external url\(\)/);
    expect(activeContent('<svg><path clip-path="url(#clip1)"/></svg>')).toBeUndefined();
  });

  it("renders every chart of the fixture without failures, ids unique", async () => {
    const charts = await renderCharts(results);
    expect(charts.failed).toEqual([]);
    const all = [...[...charts.byTest.values()].flat(), ...charts.run];
    expect(all.map((c) => c.id).sort()).toEqual(
      ["t0-prompt", "t0-cdf", "t0-slots", "t1-cdf", "t1-slots", "t2-load", "t2-cdf", "t2-slots", "run-split"].sort(),
    );
    expect(new Set(all.map((c) => c.id)).size).toBe(all.length);
    for (const c of all) expect(c.svg).toMatch(/^<svg[\s\S]*class="mark-/);
  });
});
