import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { formatNumber } from "../../src/analysis/format.js";
import { summarize } from "../../src/measure/histogram.js";
import type { MetricSummary, Results } from "../../src/measure/results.js";
import {
  bencherMetrics,
  exportPoints,
  githubBenchmarkEntries,
  REPORT_FILES,
  renderReportFiles,
} from "../../src/report/exports.js";
import { resultsSchema } from "../../src/report/results-schema.js";

const results = resultsSchema.parse(
  JSON.parse(readFileSync(new URL("../fixtures/results/quick.json", import.meta.url), "utf8")),
) as Results;

/**
 * github-action-benchmark v1.22 src/extract.ts: `BenchmarkResult = z.object({name: z.coerce.string(), value:
 * z.coerce.number(), range: z.coerce.string().optional(), unit: z.coerce.string(), extra: z.coerce.string().optional()})`.
 * Checked strictly here (no coercion): we write the types it expects.
 */
const gabEntry = z
  .object({
    name: z.string().min(1),
    value: z.number().finite(),
    range: z.string().optional(),
    unit: z.string().min(1),
    extra: z.string().optional(),
  })
  .strict();

/** Its src/extractRangeInfo.ts: what it can read back from `range`. */
const GAB_RANGE = /(?<prefix>(\+-|±)\s*)(?<value>\d.*)/;

/** https://bencher.dev/bmf.json (Bencher Metric Format JSON Schema, draft-07). */
const BMF_SCHEMA = {
  $id: "https://bencher.dev/bmf.json",
  $schema: "http://json-schema.org/draft-07/schema",
  type: "object",
  patternProperties: {
    ".+": {
      type: "object",
      patternProperties: {
        ".+": {
          type: "object",
          properties: { value: { type: "number" }, lower_value: { type: "number" }, upper_value: { type: "number" } },
          required: ["value"],
        },
      },
    },
  },
};

describe("github-action-benchmark custom JSON", () => {
  const { smaller, bigger } = githubBenchmarkEntries(results);

  it("every entry matches the action's schema, names are unique, values finite", () => {
    expect(smaller.length).toBeGreaterThan(10);
    expect(bigger.length).toBeGreaterThan(5);
    for (const e of [...smaller, ...bigger]) gabEntry.parse(e);
    const names = [...smaller, ...bigger].map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it("splits by direction: latencies and error rate are smaller-is-better, rates bigger-is-better", () => {
    const s = new Map(smaller.map((e) => [e.name, e]));
    const b = new Map(bigger.map((e) => [e.name, e]));
    const latency = results.tests.find((t) => t.name === "latency")!;
    expect(s.get("latency: ttft_ms p95")).toMatchObject({ unit: "ms", value: latency.metrics.ttft_ms!.summary.p95 });
    expect(s.get("latency: error_rate")).toMatchObject({ unit: "ratio", value: 0 });
    expect(b.get("throughput: output_tokens_per_s")?.unit).toBe("tok/s");
    expect(b.get("latency: decode_tokens_per_s p50")?.unit).toBe("tok/s");
    // Server-side rates from /metrics counters.
    expect(b.get("throughput: server_decode_tokens_per_s_per_slot")?.value).toBe(
      results.tests[1]!.server!.rates.decodeTokensPerSPerSlot,
    );
    // Per-scenario series for tests with several scenarios.
    expect(s.get("latency/prompt_512: ttft_ms p95")).toBeDefined();
    expect(s.get("ramp/concurrency_8: e2e_ms p95")).toBeDefined();
    for (const e of bigger) expect(s.has(e.name)).toBe(false);
  });

  it("leaves out workload descriptors (prompt and output lengths)", () => {
    const names = [...smaller, ...bigger].map((e) => e.name);
    expect(names.some((n) => /: (prompt_tokens|output_tokens)( |$)/.test(n))).toBe(false);
  });

  it("range is the spread over trials in the `± x` form the action parses, only with 2+ trials", () => {
    const tput = results.tests.find((t) => t.name === "throughput")!;
    expect(tput.trials).toBe(3);
    const rps = [...smaller, ...bigger].find((e) => e.name === "throughput: requests_per_s")!;
    const trials = tput.metrics.requests_per_s!.trials.map((t) => t.mean);
    const m = trials.reduce((a, b) => a + b, 0) / trials.length;
    const sd = Math.sqrt(trials.reduce((a, b) => a + (b - m) ** 2, 0) / (trials.length - 1));
    expect(rps.range).toMatch(GAB_RANGE);
    expect(Number(rps.range!.match(GAB_RANGE)!.groups!.value)).toBeCloseTo(sd, 2);
    expect(rps.extra).toBe(`trials: ${trials.map((v) => formatNumber(v)).join(", ")}`);
    const single = smaller.find((e) => e.name === "latency: ttft_ms p95")!;
    expect(single.range).toBeUndefined();
    expect(single.extra).toMatch(/^n=15\np50 /);
  });

  it("NaN statistics (a metric without samples) are left out", () => {
    const nan: MetricSummary = summarize([]);
    const r: Results = structuredClone(results);
    r.tests[0]!.metrics.ttft_ms = { unit: "ms", better: "lower", summary: nan, trials: [nan], histogram: "x" };
    const names = githubBenchmarkEntries(r).smaller.map((e) => e.name);
    expect(names).not.toContain("latency: ttft_ms p95");
    expect(JSON.stringify(githubBenchmarkEntries(r))).not.toMatch(/null|NaN/);
  });
});

describe("Bencher Metric Format", () => {
  const bmf = bencherMetrics(results);

  it("validates against Bencher's JSON Schema; measure names fit 64 characters", () => {
    const validate = new Ajv({ strict: false }).compile(BMF_SCHEMA);
    expect(validate(bmf), JSON.stringify(validate.errors)).toBe(true);
    for (const measures of Object.values(bmf))
      for (const name of Object.keys(measures)) expect(name.length).toBeLessThanOrEqual(64);
  });

  it("benchmark per test (and scenario), measure per metric and statistic, bounds from the trials", () => {
    expect(Object.keys(bmf)).toEqual(expect.arrayContaining(["latency", "throughput", "ramp", "latency/prompt_16"]));
    expect(bmf.latency!["ttft_ms.p95"]).toEqual({ value: results.tests[0]!.metrics.ttft_ms!.summary.p95 });
    const rps = bmf.throughput!["requests_per_s.mean"]!;
    const trials = results.tests[1]!.metrics.requests_per_s!.trials.map((t) => t.mean);
    expect(rps.lower_value).toBe(Math.min(...trials));
    expect(rps.upper_value).toBe(Math.max(...trials));
    expect(rps.lower_value!).toBeLessThanOrEqual(rps.value);
    expect(rps.upper_value!).toBeGreaterThanOrEqual(rps.value);
  });

  it("has the same points as the github-action-benchmark files", () => {
    const { smaller, bigger } = githubBenchmarkEntries(results);
    const count = Object.values(bmf).reduce((s, m) => s + Object.keys(m).length, 0);
    expect(count).toBe(smaller.length + bigger.length);
    expect(count).toBe(exportPoints(results).length);
  });
});

describe("renderReportFiles", () => {
  it("returns report.html and the three exports, the JSON ones parseable", async () => {
    const files = await renderReportFiles(results);
    expect(Object.keys(files).sort()).toEqual(Object.values(REPORT_FILES).sort());
    expect(files["report.html"]).toMatch(/^<!doctype html>/);
    expect(JSON.parse(files["benchmark-smaller.json"])).toEqual(githubBenchmarkEntries(results).smaller);
    expect(JSON.parse(files["benchmark-bigger.json"])).toEqual(githubBenchmarkEntries(results).bigger);
    expect(JSON.parse(files["bencher.json"])).toEqual(bencherMetrics(results));
  });

  it("passes the comparison's label and note to report.html, escaped", async () => {
    const files = await renderReportFiles(results, {
      comparisonLabel: "baselines/<gpu>.json",
      comparisonNote: "not comparable: GPU differs (<b>)",
    });
    expect(files["report.html"]).toContain("Compared with <code>baselines/&lt;gpu&gt;.json</code>.");
    expect(files["report.html"]).toContain("not comparable: GPU differs (&lt;b&gt;)");
  });
});
