import { formatChange, formatNumber, formatP, formatPercent } from "../analysis/format.js";
import { METRICS, REPORT_METRIC_ORDER } from "../measure/metrics.js";
import type {
  Bottleneck,
  Check,
  MetricResult,
  Recommendation,
  Results,
  ServerObservation,
  TestResult,
  VerdictLevel,
} from "../measure/results.js";
import type { RenderedChart, ReportCharts } from "./charts.js";
import { machineLine } from "./machine-line.js";

/**
 * report.html: one self-contained file (inline CSS and SVG charts, no JavaScript, no external URL), readable offline
 * from an Actions artifact. A Content-Security-Policy in the page forbids scripts and every fetch, so even a mistake
 * in escaping could not run anything or phone home. Pure apart from rendering charts (async, no I/O).
 *
 * Everything that did not come from tokengate (test and scenario names, model paths, server flags, reasons quoting
 * them) goes through `escapeHtml`.
 */

export interface HtmlReportOptions {
  /** What the run was compared with (a baseline file), shown under the verdict. */
  comparisonLabel?: string;
  /** Why no baseline was compared (e.g. nothing in the folder matched this environment), shown under the verdict. */
  comparisonNote?: string;
  /** Charts rendered beforehand (tests pass them in); default: rendered here. */
  charts?: ReportCharts;
}

const UNSAFE_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Text as inert HTML, safe in element content and in double- or single-quoted attributes. */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replace(UNSAFE_CHARS, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const e = escapeHtml;

const num = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "" : formatNumber(v));

const VERDICT_TEXT: Record<VerdictLevel, string> = { pass: "PASS", warn: "WARN", fail: "FAIL" };
const VERDICT_ORDER = { fail: 0, warn: 1, pass: 2 } as const;

function badge(level: VerdictLevel): string {
  return `<span class="badge ${level}">${VERDICT_TEXT[level]}</span>`;
}

/** A table; `numeric` says which columns hold numbers (right-aligned, tabular figures). Cells are HTML already. */
function table(head: string[], rows: string[][], numeric: (col: number) => boolean = () => false): string {
  const cls = (i: number) => (numeric(i) ? ' class="n"' : "");
  const th = head.map((h, i) => `<th${cls(i)}>${h}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${cls(i)}>${c}</td>`).join("")}</tr>`).join("\n");
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function chartFigure(c: RenderedChart): string {
  return `<figure id="${e(c.id)}" class="chart" role="img" aria-label="${e(c.title)}"><figcaption><strong>${e(c.title)}</strong><br><span class="muted">${e(c.description)}</span></figcaption>${c.svg}</figure>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

function header(results: Results, opts: HtmlReportOptions): string {
  const v = results.verdict;
  const t = results.environment.target;
  const started = Date.parse(results.startedAt);
  const finished = Date.parse(results.finishedAt);
  const duration =
    Number.isFinite(started) && Number.isFinite(finished) ? ` (${formatNumber((finished - started) / 1000)} s)` : "";
  const model = t.model?.path ? t.model.path.split("/").pop() : undefined;
  return `<header>
<h1>tokengate: ${e(results.suite.name)}</h1>
<p class="meta">${e(results.startedAt)}${e(duration)} · ${e(t.kind)}${model ? ` · ${e(model)}` : ""}${t.build ? ` · llama.cpp ${e(t.build)}` : ""} · tokengate ${e(results.tool.version)}</p>
<div class="verdict ${v.overall}">${badge(v.overall)} <span>${e(v.reason)}</span></div>
${opts.comparisonLabel ? `<p>Compared with <code>${e(opts.comparisonLabel)}</code>.</p>` : ""}
${opts.comparisonNote ? `<p class="warn-text">${e(opts.comparisonNote)}</p>` : ""}
${summary(results)}
</header>`;
}

/** The most important findings and the first thing to try, right under the verdict. */
function summary(results: Results): string {
  const a = results.analysis;
  if (!a) return "";
  const top = a.bottlenecks.filter((b) => b.severity === "high").slice(0, 3);
  const first = a.recommendations[0];
  if (!top.length && !first) return "";
  const brief = (t: string) => (t.length > 160 ? `${t.slice(0, 159)}…` : t);
  const items = top.map(
    (b) => `<li>${e(b.test)}: ${e(b.title)} <span class="muted">(${e(brief(b.evidence[0] ?? ""))})</span></li>`,
  );
  if (first) items.push(`<li>first thing to try: <strong>${e(first.action)}</strong></li>`);
  return `<ul class="summary">${items.join("")}</ul><p class="muted"><a href="#bottlenecks">Bottlenecks and recommendations</a> has the evidence.</p>`;
}

function nav(results: Results): string {
  const links = [
    ["checks", "Checks"],
    ["tests", "Tests"],
    ["bottlenecks", "Bottlenecks and recommendations"],
    ["environment", "Environment"],
    ["definitions", "Metric definitions"],
  ];
  const tests = results.tests.map((t, i) => `<a href="#test-${i}">${e(t.name)}</a>`).join(" · ");
  return `<nav>${links.map(([id, label]) => `<a href="#${id}">${label}</a>`).join(" · ")}${tests ? `<br><span class="muted">tests:</span> ${tests}` : ""}</nav>`;
}

function comparisonCell(c: Check): string {
  const k = c.comparison;
  if (!k) return "";
  const parts = [formatChange(k.change)];
  if (k.ciLow !== undefined && k.ciHigh !== undefined)
    parts.push(`[${formatPercent(k.ciLevel ?? 0.95)} CI ${formatChange(k.ciLow)}..${formatChange(k.ciHigh)}]`);
  if (k.pAdjusted !== undefined) parts.push(formatP(k.pAdjusted));
  if (k.inconclusive) parts.push("inconclusive");
  return e(parts.join(" "));
}

function checksSection(results: Results): string {
  const checks = [...results.verdict.checks].sort((a, b) => VERDICT_ORDER[a.verdict] - VERDICT_ORDER[b.verdict]);
  if (!checks.length)
    return `<section id="checks"><h2>Checks</h2><p class="muted">No checks: the suite sets no targets and no baseline was given.</p></section>`;
  const withComparison = checks.some((c) => c.comparison);
  const head = ["", "test", "check", "value", "reference", ...(withComparison ? ["vs baseline"] : []), "reason"];
  const row = (c: Check) => [
    badge(c.verdict),
    e(c.test),
    `<code>${e(c.metric)}</code>`,
    num(c.value),
    num(c.reference),
    ...(withComparison ? [comparisonCell(c)] : []),
    e(c.reason),
  ];
  const numericCols = (i: number) => i === 3 || i === 4;
  const problems = checks.filter((c) => c.verdict !== "pass");
  const passes = checks.filter((c) => c.verdict === "pass");
  const parts = [`<section id="checks"><h2>Checks</h2>`];
  if (problems.length) parts.push(`<h3>Regressions and problems</h3>`, table(head, problems.map(row), numericCols));
  if (passes.length)
    parts.push(
      `<details${problems.length ? "" : " open"}><summary>${passes.length} passing check${passes.length > 1 ? "s" : ""}</summary>`,
      table(head, passes.map(row), numericCols),
      "</details>",
    );
  parts.push("</section>");
  return parts.join("\n");
}

/** Rows of the per-test metric table, in reading order (the same as report.md), then any other metric. */
const TABLE_METRICS = REPORT_METRIC_ORDER;

function metricsTable(metrics: Record<string, MetricResult>): string {
  const keys = [
    ...TABLE_METRICS.filter((k) => metrics[k]),
    ...Object.keys(metrics).filter((k) => !TABLE_METRICS.includes(k)),
  ];
  const rows = keys.map((k) => {
    const m = metrics[k]!;
    const s = m.summary;
    const cv = s.mean && Number.isFinite(s.stddev) ? `${formatNumber((100 * s.stddev) / s.mean)}%` : "";
    return [
      `<code>${e(k)}</code>`,
      e(m.unit),
      String(s.count),
      num(s.mean),
      num(s.p50),
      num(s.p90),
      num(s.p95),
      num(s.p99),
      num(s.max),
      num(s.stddev),
      cv,
    ];
  });
  return table(["metric", "unit", "n", "mean", "p50", "p90", "p95", "p99", "max", "stddev", "CV"], rows, (i) => i >= 2);
}

function scenariosTable(test: TestResult): string {
  if (test.scenarios.length < 2) return "";
  const rows = test.scenarios.map((sc) => {
    const m = sc.metrics;
    const g = (k: string, stat: "mean" | "p50" | "p95") => num(m[k]?.summary[stat]);
    return [
      e(sc.name),
      `${sc.requests.succeeded}/${sc.requests.attempted}`,
      g("prompt_tokens", "mean"),
      g("ttft_ms", "p50"),
      g("ttft_ms", "p95"),
      g("e2e_ms", "p50"),
      g("e2e_ms", "p95"),
      g("tpot_ms", "p50"),
      g("decode_tokens_per_s", "p50"),
      num(m.output_tokens_per_s?.summary.mean),
      num(m.requests_per_s?.summary.mean),
    ];
  });
  return `<h4>Scenarios</h4>${table(
    [
      "scenario",
      "ok",
      "prompt tok",
      "TTFT p50 ms",
      "TTFT p95",
      "e2e p50 ms",
      "e2e p95",
      "TPOT p50 ms",
      "decode tok/s p50",
      "output tok/s",
      "req/s",
    ],
    rows,
    (i) => i >= 1,
  )}`;
}

function serverSection(s: ServerObservation | undefined): string {
  if (!s) return "";
  const c = s.counters;
  const r = s.rates;
  const rows: string[][] = [
    ["prompt tokens computed / cached", `${num(c.promptTokens)} / ${num(c.cachedPromptTokens)}`],
    [
      "prompt processing",
      `${num(r.promptTokensPerS)} tok/s (${num(c.promptSeconds)} s, ${r.promptTimeShare === undefined ? "" : formatPercent(r.promptTimeShare)} of the window)`,
    ],
    ["tokens generated", num(c.tokensPredicted)],
    ["decode speed per stream", `${num(r.decodeTokensPerSPerSlot)} tok/s`],
    ["decode throughput (all slots)", `${num(r.decodeTokensPerS)} tok/s over ${num(s.windowS)} s`],
    [
      "llama_decode() calls",
      `${num(c.decodeCalls)} (${num(r.tokensPerDecodeCall)} tokens, ${num(r.busySlotsPerDecode)} busy slots per call)`,
    ],
  ];
  if ((c.draftTokens ?? 0) > 0)
    rows.push([
      "speculative drafts accepted",
      `${num(c.draftAccepted)} of ${num(c.draftTokens)} (${formatPercent(r.draftAcceptance ?? 0)})`,
    ]);
  const l = s.load;
  if (l) {
    if (l.slots !== undefined && l.busySlotsMean !== undefined)
      rows.push([
        "slots busy",
        `mean ${num(l.busySlotsMean)} of ${l.slots} (${formatPercent(l.occupancy ?? 0)}), max ${num(l.busySlotsMax)}; all busy in ${formatPercent(l.allBusyShare ?? 0)} of samples`,
      ]);
    if (l.deferredMean !== undefined)
      rows.push([
        "requests deferred (waiting for a slot)",
        `mean ${num(l.deferredMean)}, max ${num(l.deferredMax)}; in ${formatPercent(l.deferredShare ?? 0)} of samples`,
      ]);
    rows.push([
      "samples",
      `${l.samples} every ${num(l.intervalMs)} ms${s.scrapeErrors ? `; ${s.scrapeErrors} failed` : ""}`,
    ]);
  }
  return `<h4>Server side (llama-server /metrics and /slots)</h4>${table(["", "value"], rows)}
<p class="muted">Counter deltas between scrapes just before and after the test (warm-up included). Decode speed per stream = tokens / generation time summed over requests.</p>`;
}

function testSection(test: TestResult, i: number, charts: RenderedChart[]): string {
  const r = test.requests;
  const errors = Object.entries(r.errors)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const cc = test.crossCheck;
  const parts = [
    `<section class="test" id="test-${i}"><h3>${e(test.name)} <span class="muted">(${e(test.kind)})</span></h3>`,
    `<p>${r.succeeded}/${r.attempted} requests ok${errors ? ` (failed: ${e(errors)})` : ""}; ${test.trials} trial${test.trials === 1 ? "" : "s"}; measured window ${num(test.windowS)} s.${r.shortfalls ? ` <span class="warn-text">${r.shortfalls} requests produced fewer tokens than asked.</span>` : ""}</p>`,
  ];
  if (test.aborted)
    parts.push(
      `<p class="fail-text"><strong>Aborted:</strong> ${e(test.aborted)} (what was measured before is below)</p>`,
    );
  parts.push(metricsTable(test.metrics), scenariosTable(test));
  if (cc && cc.samples > 0)
    parts.push(
      `<p>Client vs server (${cc.samples} requests): client TTFT − server prompt time p50 = ${cc.ttftMinusServerPromptMsP50 === undefined ? "n/a" : `${num(cc.ttftMinusServerPromptMsP50)} ms`}; client / server decode rate p50 = ${cc.decodeRateRatioP50 === undefined ? "n/a" : num(cc.decodeRateRatioP50)}.</p>`,
    );
  parts.push(serverSection(test.server));
  if (test.machine) parts.push(`<p class="machine">${e(machineLine(test.machine))}</p>`);
  if (charts.length) parts.push(`<div class="charts">${charts.map(chartFigure).join("\n")}</div>`);
  parts.push("</section>");
  return parts.join("\n");
}

function severityBadge(s: Bottleneck["severity"]): string {
  return `<span class="sev ${s}">${s}</span>`;
}

function evidenceList(lines: string[]): string {
  return lines.length ? `<ul class="evidence">${lines.map((l) => `<li>${e(l)}</li>`).join("")}</ul>` : "";
}

function recommendationItem(r: Recommendation): string {
  const flags = r.flags?.length ? ` <code>${e(r.flags.join(" "))}</code>` : "";
  return `<li><strong>${e(r.action)}</strong>${flags}<br><span class="muted">${e(r.knob)} · ${e(r.tests.join(", "))}:</span> ${e(r.why)}${evidenceList(r.evidence)}</li>`;
}

function bottleneckSection(results: Results, run: RenderedChart[]): string {
  const a = results.analysis;
  const parts = [`<section id="bottlenecks"><h2>Bottlenecks and recommendations</h2>`];
  if (!a) {
    parts.push(`<p class="muted">No analysis in these results.</p></section>`);
    return parts.join("\n");
  }
  const split = run.find((c) => c.id === "run-split");
  if (a.timeSplits.length) {
    const rows = a.timeSplits.map((s) => [
      e(s.test),
      num(s.e2eMs),
      s.queueMs === undefined ? "n/a" : num(s.queueMs),
      num(s.promptMs),
      num(s.decodeMs),
    ]);
    parts.push(
      `<h3>Where the time goes (median request, ms)</h3>`,
      table(["test", "e2e", "waiting", "prompt processing", "decoding"], rows, (i) => i >= 1),
    );
    if (split) parts.push(`<div class="charts">${chartFigure(split)}</div>`);
  }
  parts.push("<h3>What limits the server</h3>");
  if (a.bottlenecks.length)
    parts.push(
      `<ul class="findings">${a.bottlenecks.map((b) => `<li>${severityBadge(b.severity)} <strong>${e(b.test)}</strong>: ${e(b.title)}${evidenceList(b.evidence)}</li>`).join("\n")}</ul>`,
    );
  else parts.push(`<p>No bottleneck stands out in what was measured.</p>`);
  parts.push("<h3>What to try</h3>");
  if (a.recommendations.length)
    parts.push(
      `<ol class="recs">${a.recommendations.map(recommendationItem).join("\n")}</ol>`,
      `<p class="muted">Each is one experiment: change one thing, run tokengate again, compare.</p>`,
    );
  else parts.push(`<p>Nothing to recommend from these measurements.</p>`);
  parts.push("</section>");
  return parts.join("\n");
}

function environmentSection(results: Results): string {
  const env = results.environment;
  const t = env.target;
  const m = t.model;
  const rows: Array<[string, string]> = [
    ["target", t.kind],
    ["llama.cpp build", t.build ?? "unknown"],
    ["server flags", t.serverFlags.join(" ") || "(none)"],
    ["model", m?.path ?? "(external)"],
    ["model sha256", m?.sha256 ?? ""],
    ["quantization", m?.quantization ?? ""],
    [
      "model shape",
      m?.shape
        ? Object.entries(m.shape)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")
        : "",
    ],
    ["CPU", `${env.cpuModel} x${env.cpuCount}`],
    ["memory", `${formatNumber(env.memoryBytes / 2 ** 30)} GiB`],
    [
      "GPU",
      env.gpus.length
        ? env.gpus
            .map(
              (g) => `${g.name}${g.driver ? ` (driver ${g.driver})` : ""}${g.memoryMiB ? `, ${g.memoryMiB} MiB` : ""}`,
            )
            .join(", ")
        : "none",
    ],
    ["CUDA", env.cuda ?? ""],
    ["OS / node", `${env.os} ${env.arch} / ${env.node}`],
    ["suite", `${results.suite.name} (sha256 ${results.suite.sha256.slice(0, 12)})`],
    ["tokengate", results.tool.version],
  ];
  for (const [k, v] of Object.entries(t.details)) rows.push([k, String(v)]);
  return `<section id="environment"><h2>Environment</h2>${table(
    ["", "value"],
    rows.filter(([, v]) => v !== "").map(([k, v]) => [e(k), e(v)]),
  )}</section>`;
}

const SERVER_DEFINITIONS: Array<[string, string]> = [
  [
    "server prompt tok/s",
    "Δ prompt_tokens_total / Δ prompt_seconds_total (llama-server /metrics; cached tokens excluded)",
  ],
  [
    "server decode tok/s per stream",
    "Δ tokens_predicted_total / Δ tokens_predicted_seconds_total (generation time summed over requests)",
  ],
  ["busy slots per decode call", "batch fill: from n_busy_slots_per_decode (cumulative) and Δ n_decode_total"],
  ["waiting", "median client TTFT minus the server's own timings.prompt_ms: slot wait, HTTP, tokenization"],
];

function definitionsSection(): string {
  const rows = Object.entries(METRICS).map(([k, d]) => [`<code>${e(k)}</code>`, e(d.unit), e(d.description)]);
  const server = SERVER_DEFINITIONS.map(([k, d]) => [e(k), "", e(d)]);
  return `<section id="definitions"><h2>Metric definitions</h2>${table(["metric", "unit", "definition"], [...rows, ...server])}
<p class="muted">Request start is the moment the request is handed to the socket (<code>process.hrtime.bigint()</code>). See docs/metrics.md.</p></section>`;
}

const CSS = `
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--pass:#1a7f37;--warn:#9a6700;--fail:#cf222e}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1180px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:32px}h3{font-size:16px;margin:20px 0 8px}h4{font-size:14px;margin:14px 0 6px}
.meta,.muted{color:var(--muted)}
nav{margin:12px 0;padding:8px 12px;background:#f6f8fa;border:1px solid var(--line);border-radius:6px}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.verdict{font-size:16px;padding:10px 14px;border-radius:6px;border:1px solid var(--line);margin:10px 0}
.verdict.pass{background:#dafbe1;border-color:#aceebb}.verdict.warn{background:#fff8c5;border-color:#eedc82}.verdict.fail{background:#ffebe9;border-color:#ffcecb}
.badge{display:inline-block;font-weight:600;font-size:12px;padding:1px 7px;border-radius:10px;color:#fff}
.badge.pass{background:var(--pass)}.badge.warn{background:var(--warn)}.badge.fail{background:var(--fail)}
.sev{display:inline-block;font-size:11px;font-weight:600;padding:0 6px;border-radius:8px;border:1px solid}
.sev.high{color:var(--fail);border-color:var(--fail)}.sev.medium{color:var(--warn);border-color:var(--warn)}.sev.low{color:var(--muted);border-color:var(--muted)}
.warn-text{color:var(--warn)}.fail-text{color:var(--fail)}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px}
.charts{display:flex;flex-wrap:wrap;gap:16px;margin:8px 0}
figure.chart{margin:0;padding:8px;border:1px solid var(--line);border-radius:6px;max-width:100%;overflow-x:auto}
figure.chart svg{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;margin-bottom:4px}
section.test{border-top:1px dashed var(--line);margin-top:16px}
ul.findings,ol.recs{padding-left:20px}ul.findings>li,ol.recs>li{margin-bottom:10px}
ul.summary{margin:6px 0 2px;padding-left:20px}
ul.evidence{margin:2px 0 0;padding-left:18px;color:var(--muted);font-size:13px}
details>summary{cursor:pointer;color:var(--muted)}
@media print{nav{display:none}figure.chart{break-inside:avoid}}
`;

/** The page's policy: no scripts, no fetches of any kind; inline styles and the inline SVG only. */
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/** report.html for a run. Pure (no I/O); async because vega renders charts asynchronously. */
export async function renderHtml(results: Results, opts: HtmlReportOptions = {}): Promise<string> {
  // Loaded on demand: vega and vega-lite are most of the bundle's size, and only this report needs them.
  const charts = opts.charts ?? (await (await import("./charts.js")).renderCharts(results));
  const run = charts.run.filter((c) => c.id !== "run-split");
  const failed = charts.failed.length
    ? `<p class="muted">${charts.failed.length} chart(s) could not be drawn: ${e(charts.failed.map((f) => `${f.id}: ${f.error}`).join("; "))}</p>`
    : "";
  const body = [
    header(results, opts),
    nav(results),
    checksSection(results),
    `<section id="tests"><h2>Tests</h2>`,
    ...results.tests.map((t, i) => testSection(t, i, charts.byTest.get(t.name) ?? [])),
    run.length ? `<h3>Across tests</h3><div class="charts">${run.map(chartFigure).join("\n")}</div>` : "",
    failed,
    "</section>",
    bottleneckSection(results, charts.run),
    environmentSection(results),
    definitionsSection(),
    `<footer class="muted"><p>Generated by tokengate ${e(results.tool.version)}; results schema v${e(results.schemaVersion)}.</p></footer>`,
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>tokengate ${e(VERDICT_TEXT[results.verdict.overall])}: ${e(results.suite.name)}</title>
<style>${CSS}</style>
</head>
<body>
${body.filter(Boolean).join("\n")}
</body>
</html>
`;
}
