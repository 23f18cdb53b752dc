import { markdownTable } from "markdown-table";
import type { Comparison } from "../analysis/decide.js";
import { formatNumber } from "../analysis/format.js";
import { METRICS, REPORT_METRIC_ORDER } from "../measure/metrics.js";
import type { MetricResult, Results, TestResult } from "../measure/results.js";
import { VERDICT_ICON } from "./console.js";
import { escapeMarkdown as esc } from "./escape.js";
import { isLoadKind, renderLoadSections } from "./load-report.js";
import { machineLine } from "./machine-line.js";
import { isScalingKind, renderScalingSection } from "./scaling-report.js";
import { whatChangedMarkdown } from "./what-changed.js";

/** Rows of the per-test metric table, in reading order. */
const TABLE_METRICS = REPORT_METRIC_ORDER;

/** An identifier of ours (metric keys, check names) in a code span: no markdown escaping applies inside one. */
function code(id: string): string {
  return `\`${id.replace(/[`\n]/g, "")}\``;
}

function cv(m: MetricResult): string {
  return m.summary.mean ? `${formatNumber((100 * m.summary.stddev) / m.summary.mean)}%` : "";
}

function metricRow(key: string, m: MetricResult): string[] {
  const s = m.summary;
  const f = (v: number) => (Number.isFinite(v) ? formatNumber(m.unit === "ratio" ? v : v) : "");
  return [
    code(key),
    m.unit,
    String(s.count),
    f(s.mean),
    f(s.p50),
    f(s.p90),
    f(s.p95),
    f(s.p99),
    f(s.max),
    f(s.stddev),
    cv(m),
  ];
}

function metricsTable(metrics: Record<string, MetricResult>): string {
  const rows = TABLE_METRICS.filter((k) => metrics[k]).map((k) => metricRow(k, metrics[k]!));
  return markdownTable([["metric", "unit", "n", "mean", "p50", "p90", "p95", "p99", "max", "stddev", "CV"], ...rows], {
    align: ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
  });
}

/** Latency test: one row per prompt length (the seed's "measure variance"), and a TTFT chart. */
function scenarioSection(test: TestResult): string[] {
  if (test.scenarios.length < 2) return [];
  const rows = test.scenarios.map((sc) => {
    const m = sc.metrics;
    const g = (k: string, stat: "mean" | "p50" | "p95" | "stddev") => (m[k] ? formatNumber(m[k].summary[stat]) : "");
    return [
      esc(sc.name),
      g("prompt_tokens", "mean"),
      g("ttft_ms", "mean"),
      g("ttft_ms", "p50"),
      g("ttft_ms", "p95"),
      m.ttft_ms ? cv(m.ttft_ms) : "",
      g("e2e_ms", "mean"),
      g("e2e_ms", "p95"),
      m.e2e_ms ? cv(m.e2e_ms) : "",
      g("output_tokens", "mean"),
      g("e2e_tokens_per_s", "mean"),
      m.e2e_tokens_per_s ? cv(m.e2e_tokens_per_s) : "",
    ];
  });
  const table = markdownTable(
    [
      [
        "scenario",
        "prompt tok",
        "TTFT mean ms",
        "TTFT p50",
        "TTFT p95",
        "TTFT CV",
        "total mean ms",
        "total p95",
        "total CV",
        "tokens",
        "tok/s mean",
        "tok/s CV",
      ],
      ...rows,
    ],
    { align: ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"] },
  );
  const withTtft = test.scenarios.filter((s) => s.metrics.ttft_ms);
  const chart = withTtft.length
    ? [
        "```mermaid",
        "xychart-beta",
        `  title "TTFT by prompt length (${esc(test.name)})"`,
        `  x-axis [${withTtft.map((s) => `"${String(s.params.promptTokens ?? s.name).replace(/"/g, "")}"`).join(", ")}]`,
        `  y-axis "TTFT p50 (ms)"`,
        `  bar [${withTtft.map((s) => formatNumber(s.metrics.ttft_ms!.summary.p50)).join(", ")}]`,
        "```",
      ]
    : [];
  return ["", table, "", ...chart];
}

function testSection(test: TestResult): string[] {
  const r = test.requests;
  const errors = Object.entries(r.errors)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const lines = [
    `### ${esc(test.name)} (${esc(test.kind)})`,
    "",
    `${r.succeeded}/${r.attempted} requests ok${errors ? ` (failed: ${errors})` : ""}; ${test.trials} trial${test.trials > 1 ? "s" : ""}; measured window ${formatNumber(test.windowS)} s.` +
      (r.shortfalls ? ` ⚠️ ${r.shortfalls} requests produced fewer tokens than asked.` : ""),
  ];
  if (test.aborted) lines.push("", `❌ **aborted**: ${esc(test.aborted)} (results below are what was measured before)`);
  lines.push(
    "",
    metricsTable(test.metrics),
    ...(isLoadKind(test.kind)
      ? renderLoadSections(test)
      : isScalingKind(test.kind)
        ? renderScalingSection(test)
        : scenarioSection(test)),
  );
  const cc = test.crossCheck;
  if (cc && cc.samples > 0) {
    lines.push(
      "",
      `Client vs server (${cc.samples} requests): client TTFT - server prompt time p50 = ${cc.ttftMinusServerPromptMsP50 === undefined ? "n/a" : `${formatNumber(cc.ttftMinusServerPromptMsP50)} ms`}; ` +
        `client / server decode rate p50 = ${cc.decodeRateRatioP50 === undefined ? "n/a" : formatNumber(cc.decodeRateRatioP50)}.`,
    );
  }
  if (test.machine) lines.push("", machineLine(test.machine));
  return [...lines, ""];
}

/** The seed's deliverables "bottleneck analysis" and "optimization recommendations", each line with its evidence. */
function analysisSection(results: Results): string[] {
  const a = results.analysis;
  if (!a || (a.bottlenecks.length === 0 && a.recommendations.length === 0)) return [];
  const icon = { high: "🔴", medium: "🟠", low: "⚪" } as const;
  const lines = ["## Bottlenecks and recommendations", ""];
  for (const b of a.bottlenecks) {
    lines.push(`- ${icon[b.severity]} **${esc(b.title)}** (${esc(b.test)})`);
    for (const e of b.evidence) lines.push(`  - ${esc(e, { maxLength: 400 })}`);
  }
  if (a.recommendations.length) lines.push("", "Try:");
  for (const r of a.recommendations) {
    lines.push(
      `- **${esc(r.action)}**: ${esc(r.why, { maxLength: 400 })}${r.flags ? ` (${code(r.flags.join(" "))})` : ""}`,
    );
    for (const e of r.evidence) lines.push(`  - ${esc(e, { maxLength: 400 })}`);
  }
  return [...lines, ""];
}

function environmentSection(results: Results): string[] {
  const e = results.environment;
  const t = e.target;
  const m = t.model;
  const rows: string[][] = [
    ["target", esc(t.kind)],
    ["llama.cpp build", esc(t.build ?? "unknown")],
    ["server flags", esc(t.serverFlags.join(" ") || "(none)")],
    ["model", esc(m?.path ?? "(external)")],
    ["model sha256", esc(m?.sha256 ?? "")],
    ["quantization", esc(m?.quantization ?? "")],
    [
      "model shape",
      esc(
        m?.shape
          ? Object.entries(m.shape)
              .map(([k, v]) => `${k}=${v}`)
              .join(" ")
          : "",
      ),
    ],
    ["CPU", esc(`${e.cpuModel} x${e.cpuCount}`)],
    [
      "GPU",
      esc(e.gpus.length ? e.gpus.map((g) => `${g.name}${g.driver ? ` (driver ${g.driver})` : ""}`).join(", ") : "none"),
    ],
    ["OS / node", esc(`${e.os} ${e.arch} / ${e.node}`)],
    ["suite", esc(`${results.suite.name} (sha256 ${results.suite.sha256.slice(0, 12)})`)],
    ["tokengate", esc(results.tool.version)],
  ];
  for (const [k, v] of Object.entries(t.details)) rows.push([esc(k), esc(String(v))]);
  return ["## Environment", "", markdownTable([["", "value"], ...rows]), ""];
}

function definitionsSection(): string[] {
  const rows = Object.entries(METRICS).map(([k, d]) => [code(k), d.unit, esc(d.description, { maxLength: 400 })]);
  return [
    "<details><summary>Metric definitions</summary>",
    "",
    markdownTable([["metric", "unit", "definition"], ...rows]),
    "",
    "Request start is the moment the request is handed to the socket (`process.hrtime.bigint()`). See docs/metrics.md.",
    "",
    "</details>",
  ];
}

/** report.md: the verdict first, then checks, per-test tables and charts, environment, definitions. Pure. */
/** `Same-runner A/B: 3 pairs, run order A B B A A B; A = base, B = head; every run's results in ...`. */
function abLine(ab: NonNullable<Results["ab"]>): string {
  const arms = ab.arms.map((a) => `${esc(a.name)} = ${esc(a.label, { maxLength: 80 })}`).join(", ");
  const files = ab.arms
    .flatMap((a) => a.runs.slice(0, 1))
    .map((f) => code(f))
    .join(", ");
  return `Same-runner A/B: ${ab.pairs} pairs, run order ${esc(ab.order.join(" "))}, each run in a fresh server; ${arms}; paired test on the pairs (first runs: ${files})${ab.stopped ? `; stopped early: ${esc(ab.stopped, { maxLength: 300 })}` : ""}.`;
}

export function renderMarkdown(results: Results, comparison?: Comparison): string {
  const v = results.verdict;
  const lines: string[] = [
    `# tokengate: ${esc(results.suite.name)}`,
    "",
    `**${VERDICT_ICON[v.overall]} ${v.overall.toUpperCase()}**: ${esc(v.reason, { maxLength: 500 })}`,
    "",
  ];
  if (v.changes) lines.push(whatChangedMarkdown(v.changes), "");
  if (results.ab) lines.push(abLine(results.ab), "");
  if (comparison) lines.push(`Compared with ${esc(comparison.label)}.`, "");
  const order = { fail: 0, warn: 1, pass: 2 } as const;
  const checks = [...v.checks].sort((a, b) => order[a.verdict] - order[b.verdict]);
  const problems = checks.filter((c) => c.verdict !== "pass");
  if (problems.length) {
    lines.push(
      "## Regressions and problems",
      "",
      markdownTable([
        ["", "test", "check", "reason"],
        ...problems.map((c) => [
          VERDICT_ICON[c.verdict].trim(),
          esc(c.test),
          code(c.metric),
          esc(c.reason, { maxLength: 400 }),
        ]),
      ]),
      "",
    );
  }
  if (checks.length) {
    lines.push(
      "## Checks",
      "",
      markdownTable([
        ["", "test", "check", "value", "reference", "reason"],
        ...checks.map((c) => [
          VERDICT_ICON[c.verdict].trim(),
          esc(c.test),
          code(c.metric),
          c.value === undefined ? "" : formatNumber(c.value),
          c.reference === undefined ? "" : formatNumber(c.reference),
          esc(c.reason, { maxLength: 400 }),
        ]),
      ]),
      "",
    );
  }
  lines.push("## Tests", "");
  for (const t of results.tests) lines.push(...testSection(t));
  lines.push(...analysisSection(results), ...environmentSection(results), ...definitionsSection(), "");
  return lines.join("\n");
}
