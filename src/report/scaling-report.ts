import { markdownTable } from "markdown-table";
import { formatNumber } from "../analysis/format.js";
import type { TestResult } from "../measure/results.js";
import type { PhaseFigures, ScalingExtra, ScalingPoint } from "../suite/scaling-plan.js";
import { escapeMarkdown as esc } from "./escape.js";

/**
 * Markdown for the multi-GPU scaling test (src/suite/scaling.ts): one table row per configuration (throughput,
 * latency, speedup, efficiency), mermaid xycharts of throughput against linear scaling and of efficiency, and what was
 * skipped and why. Pure: reads only the TestResult's `extra`, which may come from another run's results file, so
 * every string from it is escaped and chart labels are rebuilt from numbers and known words.
 */
export function isScalingKind(kind: string): boolean {
  return kind === "scaling";
}

const f = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "" : formatNumber(v));
const pct = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? "" : `${formatNumber(100 * v)}%`;
const num = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "0" : formatNumber(v));
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

const SPLIT_WORDS = new Set(["layer", "row", "tensor"]);

/** A chart label from the point's numbers and our own words only (no text from the file reaches mermaid). */
function axisLabel(p: ScalingPoint): string {
  const gpus = isNum(p.gpus) ? Math.round(p.gpus) : 0;
  if (gpus === 0) return "cpu";
  const mode = typeof p.splitMode === "string" && SPLIT_WORDS.has(p.splitMode) ? ` ${p.splitMode}` : "";
  const ts = Array.isArray(p.tensorSplit) && p.tensorSplit.every(isNum) ? p.tensorSplit : undefined;
  const split =
    p.tensorSplitName === "main-light" || p.tensorSplitName === "main-heavy"
      ? ` ${p.tensorSplitName}`
      : ts
        ? ` ${ts.map((x) => formatNumber(x)).join(":")}`
        : "";
  return `${gpus}${mode}${split}`;
}

function splitText(p: ScalingPoint): string {
  if (!p.gpus) return "";
  if (!p.splitMode) return "";
  const ts = p.tensorSplitName ?? (p.tensorSplit ? p.tensorSplit.join(":") : "");
  return `${p.splitMode}${ts ? ` ${ts}` : ""}`;
}

function pair(a: number | undefined, b: number | undefined): string {
  return a === undefined && b === undefined ? "" : `${f(a)} / ${f(b)}`;
}

function okAll(...phases: Array<PhaseFigures | undefined>): string {
  let ok = 0;
  let all = 0;
  for (const ph of phases) {
    ok += ph?.requests?.succeeded ?? 0;
    all += ph?.requests?.attempted ?? 0;
  }
  return all ? `${ok}/${all}` : "";
}

const STATUS_ICON: Record<string, string> = { ok: "✅", failed: "❌", aborted: "⏹️" };

function statusCell(p: ScalingPoint): string {
  const icon = STATUS_ICON[p.status] ?? "";
  return p.error ? `${icon} ${esc(p.error, { maxLength: 160 })}` : icon;
}

function table(points: ScalingPoint[], extra: ScalingExtra): string {
  const head = [
    "config",
    "GPUs",
    "devices",
    "links",
    "split",
    "load s",
    "out tok/s",
    "req/s",
    "speedup",
    "efficiency",
    "TTFT p50 / p95 ms",
    "e2e p50 / p95 ms",
    `TTFT p95 under load`,
    "ok/all",
    "",
  ];
  const rows = points.map((p) => [
    `\`${esc(p.id, { maxLength: 60 })}\`${p.id === extra.reference ? " (ref)" : ""}`,
    f(p.gpus),
    p.gpus ? esc((p.devices ?? []).join(",")) : "cpu",
    esc(p.links ?? ""),
    esc(splitText(p)),
    f(p.loadS),
    f(p.throughput?.outputTokensPerS),
    f(p.throughput?.requestsPerS),
    p.speedup === undefined ? "" : `${f(p.speedup)}x`,
    pct(p.efficiency),
    pair(p.latency?.ttftP50Ms, p.latency?.ttftP95Ms),
    pair(p.latency?.e2eP50Ms, p.latency?.e2eP95Ms),
    f(p.throughput?.ttftP95Ms),
    okAll(p.throughput, p.latency),
    statusCell(p),
  ]);
  return markdownTable([head, ...rows], { align: head.map((_, i) => (i === 0 || (i >= 3 && i <= 4) ? "l" : "r")) });
}

function charts(
  points: ScalingPoint[],
  extra: ScalingExtra,
  testName: string,
  concurrency: number | undefined,
): string[] {
  const shown = points.filter((p) => p.status === "ok" || p.throughput);
  if (shown.length < 2) return [];
  const xs = shown.map((p) => `"${axisLabel(p)}"`).join(", ");
  const ref = points.find((p) => p.id === extra.reference);
  const refTput = ref?.throughput?.outputTokensPerS;
  const ideal =
    ref && refTput && ref.gpus > 0
      ? shown.map((p) => (p.gpus > 0 ? num((refTput * p.gpus) / ref.gpus) : "0"))
      : undefined;
  const out = [
    "",
    "```mermaid",
    "xychart-beta",
    `  title "Throughput by configuration (${esc(testName, { maxLength: 60 }).replace(/"/g, "")})"`,
    `  x-axis "GPUs and split" [${xs}]`,
    `  y-axis "output tok/s"`,
    `  bar [${shown.map((p) => num(p.throughput?.outputTokensPerS)).join(", ")}]`,
    ...(ideal ? [`  line [${ideal.join(", ")}]`] : []),
    "```",
    "",
    `Bars: output tokens/s${concurrency === undefined ? "" : ` at concurrency ${f(concurrency)}`}${ideal ? `; line: linear scaling from \`${esc(ref?.id ?? "")}\` (its tok/s x GPUs / ${f(ref?.gpus)})` : ""}.`,
  ];
  const eff = shown.filter((p) => p.efficiency !== undefined);
  if (eff.length >= 2) {
    out.push(
      "",
      "```mermaid",
      "xychart-beta",
      `  title "Scaling efficiency (speedup / GPUs)"`,
      `  x-axis "GPUs and split" [${eff.map((p) => `"${axisLabel(p)}"`).join(", ")}]`,
      `  y-axis "efficiency (%)" 0 --> ${Math.max(100, Math.ceil(Math.max(...eff.map((p) => 100 * (p.efficiency ?? 0))) / 10) * 10)}`,
      `  bar [${eff.map((p) => num(100 * (p.efficiency ?? 0))).join(", ")}]`,
      `  line [${eff.map(() => "100").join(", ")}]`,
      "```",
      "",
      "Bars: efficiency; line: 100% (linear scaling).",
    );
  }
  return out;
}

/** Checks the server's own device count against the plan: a CPU build or a CUDA_VISIBLE_DEVICES mix-up shows here. */
function deviceWarnings(points: ScalingPoint[]): string[] {
  const out: string[] = [];
  for (const p of points) {
    if (p.status !== "ok" || !p.gpus) continue;
    if (p.serverGpus === undefined) {
      out.push(
        `⚠️ \`${esc(p.id)}\`: the server's log names no CUDA device, so GPU use is not confirmed: check that llama-server is a CUDA build`,
      );
    } else if (p.serverGpus !== p.gpus) {
      out.push(`⚠️ \`${esc(p.id)}\`: the server found ${f(p.serverGpus)} CUDA devices, ${f(p.gpus)} were planned.`);
    }
  }
  return out;
}

/** Sections the scaling test adds under its metric table. */
export function renderScalingSection(test: TestResult): string[] {
  if (!isScalingKind(test.kind)) return [];
  const extra = (test.extra ?? {}) as unknown as ScalingExtra;
  const points = Array.isArray(extra.points) ? extra.points : [];
  const tp = test.params.throughput as { concurrency?: unknown } | undefined;
  const concurrency = isNum(tp?.concurrency) ? tp.concurrency : undefined;
  const lines: string[] = [""];
  const where = [
    extra.gpuNames ? esc(extra.gpuNames) : isNum(extra.visibleGpus) && extra.visibleGpus > 0 ? "" : "no GPU",
    extra.topology ? `topology: ${esc(extra.topology)}` : "",
    extra.cudaVisibleDevices !== undefined ? `CUDA_VISIBLE_DEVICES=${esc(extra.cudaVisibleDevices)}` : "",
  ]
    .filter(Boolean)
    .join("; ");
  const ok = points.filter((p) => p.status === "ok");
  if (points.length <= 1) {
    lines.push(
      `One configuration measured (${where}): scaling needs 2 or more GPUs, so there is no speedup to report.`,
    );
  } else {
    const ref = extra.reference ? `; speedup and efficiency relative to \`${esc(extra.reference)}\`` : "";
    lines.push(`${f(points.length)} configurations (${f(ok.length)} measured) on ${where}${ref}.`);
  }
  const head = points.find((p) => p.id === extra.headline);
  if (head && points.length > 1) {
    lines.push(
      "",
      `The metrics above are \`${esc(head.id, { maxLength: 60 })}\`'s (the most GPUs): per-request latencies from its single requests, rates from its throughput phase${test.metrics.scaling_efficiency ? "; `speedup` and `scaling_efficiency` against the reference" : ""}.`,
    );
  }
  const skipped = Array.isArray(extra.skipped) ? extra.skipped : [];
  if (skipped.length) {
    const byReason = new Map<string, number[]>();
    for (const s of skipped) byReason.set(String(s.reason), [...(byReason.get(String(s.reason)) ?? []), s.gpus]);
    const parts = [...byReason.entries()].map(
      ([reason, gpus]) => `${gpus.map((g) => f(g)).join(", ")} GPUs (${esc(reason, { maxLength: 160 })})`,
    );
    lines.push("", `Not measured: ${parts.join("; ")}.`);
  }
  for (const n of Array.isArray(extra.notes) ? extra.notes : []) lines.push("", `ℹ️ ${esc(n, { maxLength: 300 })}`);
  if (points.length) lines.push("", table(points, extra));
  for (const w of deviceWarnings(points)) lines.push("", w);
  lines.push(...charts(points, extra, test.name, concurrency));
  lines.push(
    "",
    'Latency columns are single requests (one in flight); throughput and "under load" are the throughput phase. ' +
      "Efficiency = speedup / (GPUs / reference GPUs); 100% is linear scaling.",
  );
  return lines;
}
