import { markdownTable } from "markdown-table";
import { formatNumber } from "../analysis/format.js";
import type { MetricResult, ScenarioResult, TestResult } from "../measure/results.js";
import type { SelfCheckResult } from "../measure/self-check.js";
import type { Quantiles, ScheduleDigest, SloOutcome, StepDigest } from "../suite/load-common.js";
import type { SearchRecord } from "../suite/max-load.js";
import type { ResetSummary } from "../suite/probe-reset.js";
import { escapeMarkdown as esc } from "./escape.js";

/**
 * Markdown for the load tests (ramp, max-load, stress, open-loop): per-step tables and mermaid xycharts, the search's
 * evidence, per-task tables, the schedule and raw-vs-corrected latencies, and the client self-check. Pure: reads only
 * the TestResult (its `extra` as the load tests write it), so a results.json read back renders the same.
 */
export const LOAD_KINDS = new Set(["ramp", "max-load", "stress", "open-loop"]);

export function isLoadKind(kind: string): boolean {
  return LOAD_KINDS.has(kind);
}

const f = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "" : formatNumber(v));
const pct = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? "" : `${formatNumber(100 * v)}%`;

/** SLO text is built from numbers only (zod-typed), so it needs no escaping. */

/** Sections a load test adds under its metric table (empty for other kinds). */
export function renderLoadSections(test: TestResult): string[] {
  if (!isLoadKind(test.kind)) return [];
  const extra = (test.extra ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  if (test.kind === "ramp" || test.kind === "max-load") out.push(...stepSections(test, extra));
  if (test.kind === "stress") out.push(...taskSection(test));
  if (test.kind === "open-loop") out.push(...openLoopSections(test, extra));
  const self = extra.selfCheck as SelfCheckResult | undefined;
  if (self) out.push("", selfCheckLine(self));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// ramp and max-load

function sloText(slo: Record<string, unknown> | undefined): string {
  if (!slo) return "";
  const p = typeof slo.percentile === "number" ? f(slo.percentile) : "95";
  const parts: string[] = [];
  if (typeof slo.ttftMs === "number") parts.push(`TTFT p${p} ≤ ${f(slo.ttftMs)} ms`);
  if (typeof slo.tpotMs === "number") parts.push(`TPOT p${p} ≤ ${f(slo.tpotMs)} ms`);
  if (typeof slo.e2eMs === "number") parts.push(`e2e p${p} ≤ ${f(slo.e2eMs)} ms`);
  if (typeof slo.maxErrorRate === "number") parts.push(`error rate ≤ ${pct(slo.maxErrorRate)}`);
  return parts.join(", ");
}

const unitOf = (variable: string) => (variable === "rate" ? "req/s" : "users");

function stepSections(test: TestResult, extra: Record<string, unknown>): string[] {
  const steps = (extra.steps as StepDigest[] | undefined) ?? [];
  // Read back from a results file that may not be ours: only the two known words reach the text.
  const variable = (extra.variable ?? test.params.variable) === "rate" ? "rate" : "concurrency";
  const slo = test.params.slo as Record<string, unknown> | undefined;
  const out: string[] = [""];
  if (test.kind === "max-load") out.push(...searchSummary(extra, variable, slo));
  else {
    const best = variable === "rate" ? test.metrics.max_sustainable_rps : test.metrics.max_sustainable_concurrency;
    if (slo) {
      out.push(
        best && best.summary.mean > 0
          ? `Highest step meeting the SLO (${sloText(slo)}): **${f(best.summary.mean)} ${unitOf(variable)}**.`
          : `No step met the SLO (${sloText(slo)}).`,
      );
    }
    const stops = (extra.stoppedEarly as Array<{ afterStep: string; reason: string }> | undefined) ?? [];
    for (const s of stops)
      out.push("", `⏹️ Stopped early after \`${esc(s.afterStep)}\`: ${esc(s.reason, { maxLength: 400 })}.`);
  }
  const reset = resetLine(extra.stateReset as ResetSummary | undefined);
  if (reset) out.push("", reset);
  if (steps.length === 0) return out;
  out.push("", stepTable(steps, variable), ...stepCharts(steps, variable, slo));
  return out;
}

/** What was done to the server between probes (absent in results written before resets existed). */
function resetLine(r: ResetSummary | undefined): string | undefined {
  if (!r || typeof r.probes !== "number" || r.probes === 0) return undefined;
  const idle =
    r.notIdle > 0
      ? ` ⚠️ ${f(r.notIdle)} of ${f(r.probes)} probes started while the server was still busy.`
      : r.idleUnknown === r.probes
        ? " Whether the server was idle at each start is unknown."
        : r.idleUnknown > 0
          ? ` Idle at the start of ${f(r.probes - r.idleUnknown)} of ${f(r.probes)} probes (unknown for the others).`
          : " Every probe started on an idle server.";
  const why = r.firstProblem ? ` (${esc(r.firstProblem.replace(/^not reset: /, ""), { maxLength: 300 })})` : "";
  if (r.reset === r.probes)
    return `Server state between probes: reset before each of the ${f(r.probes)} probes (${esc(r.method)}).${idle}`;
  if (r.reset === 0)
    return `⚠️ Server state between probes: **not reset**${why}: a probe may inherit the KV cache and queue the previous one left.${idle}`;
  return `⚠️ Server state between probes: reset before only ${f(r.reset)} of ${f(r.probes)} probes (${esc(r.method)}); first problem${why}.${idle}`;
}

function searchSummary(
  extra: Record<string, unknown>,
  variable: string,
  slo: Record<string, unknown> | undefined,
): string[] {
  const searches = (extra.searches as SearchRecord[] | undefined) ?? [];
  const out: string[] = [];
  for (const s of searches) {
    const trial = searches.length > 1 ? ` (trial ${f(s.trial + 1)})` : "";
    const unit = unitOf(variable);
    const head = s.drift
      ? driftText(s.drift, variable, unit, trial)
      : s.maxPassing === undefined
        ? `No ${variable} met the SLO${trial}: even ${f(s.probes[s.probes.length - 1]?.load)} ${unit} missed it.`
        : s.end === "all-passed"
          ? `**Maximum sustainable ${variable}${trial}: at least ${f(s.maxPassing)} ${unit}** (every probe up to max passed).`
          : `**Maximum sustainable ${variable}${trial}: ${f(s.maxPassing)} ${unit}**${s.minFailing === undefined ? "" : `; ${f(s.minFailing)} ${unit} misses it`}.`;
    const conf =
      s.maxPassing === undefined || s.drift
        ? ""
        : s.confirmed
          ? " Confirmed by a repeat."
          : " ⚠️ Not confirmed by a repeat.";
    const ended =
      s.end === "max-probes"
        ? " ⚠️ The search hit its probe limit before converging."
        : s.end === "aborted"
          ? " ❌ The search was interrupted."
          : "";
    out.push(
      `${head}${conf}${ended} SLO: ${sloText(slo)}.`,
      "",
      `Found in **${s.probes.length} probes** (to ±${f(s.precision)} ${unit}); a linear sweep to the same precision needs ${s.linearSweepProbes}. ` +
        `Probes in order: ${s.probes.map((p) => `${f(p.load)}${p.phase === "confirm" ? " (repeat)" : ""} ${p.pass ? "✅" : "❌"}`).join(" → ")}.`,
    );
  }
  return out;
}

/** A drifted search: no boundary, both probes' figures. The SLO lines are built from numbers only (evaluateSlo). */
function driftText(d: NonNullable<SearchRecord["drift"]>, variable: string, unit: string, trial: string): string {
  const probe = (p: typeof d.first) =>
    `${p.pass ? "met" : "missed"} the SLO (worst ratio ${Number.isFinite(p.ratio) ? f(p.ratio) : "∞"}${p.slo ? `; ${esc(p.slo.replace(/^(met|missed): /, ""), { maxLength: 200 })}` : ""})`;
  const apart = Number.isFinite(d.difference) ? `${f(100 * d.difference)}% apart` : "not comparable";
  const bracket =
    d.bracket.maxPassing !== undefined || d.bracket.minFailing !== undefined
      ? ` Before the repeat the search stood at ${d.bracket.maxPassing === undefined ? "?" : f(d.bracket.maxPassing)}–${d.bracket.minFailing === undefined ? "?" : f(d.bracket.minFailing)} ${unit}; that is not a boundary.`
      : "";
  return (
    `⚠️ **No maximum sustainable ${variable}${trial}: the server's behaviour drifted during the search.** ` +
    `At ${f(d.load)} ${unit} the first probe (\`${esc(d.first.label)}\`) ${probe(d.first)}; its repeat (\`${esc(d.repeat.label)}\`) ${probe(d.repeat)}: ` +
    `${apart}, beyond the ${f(100 * d.tolerance)}% tolerance.${bracket}`
  );
}

function q(x: Quantiles | undefined, k: keyof Quantiles): string {
  return x ? f(x[k]) : "";
}

function sloCell(slo: SloOutcome | undefined): string {
  if (!slo) return "";
  if (slo.pass) return "✅";
  return `❌ ${esc(slo.reason.replace(/^missed: /, ""), { maxLength: 120 })}`;
}

function stepTable(steps: StepDigest[], variable: string): string {
  const open = variable === "rate";
  const trials = new Set(steps.map((s) => s.trial)).size > 1;
  const head = [
    "step",
    ...(trials ? ["trial"] : []),
    variable,
    "ok/all",
    "req/s",
    "goodput",
    "tok/s",
    "errors",
    "e2e mean ms",
    "p50",
    "p95",
    "p99",
    "TTFT p50",
    "TTFT p95",
    ...(open ? ["e2e corr. p95", "lag p99 ms", "late/dropped"] : []),
    "in flight",
    "SLO",
    "",
  ];
  const rows = steps.map((s) => {
    const sched = s.schedule;
    return [
      `\`${esc(s.label)}\`${s.phase && s.phase !== "ramp" ? ` ${esc(s.phase)}` : ""}`,
      ...(trials ? [f(s.trial + 1)] : []),
      f(s.load),
      `${f(s.requests.succeeded)}/${f(s.requests.attempted)}`,
      f(s.requestsPerS),
      f(s.goodputRps),
      f(s.outputTokensPerS),
      pct(s.errorRate),
      q(s.e2eMs, "mean"),
      q(s.e2eMs, "p50"),
      q(s.e2eMs, "p95"),
      q(s.e2eMs, "p99"),
      q(s.ttftMs, "p50"),
      q(s.ttftMs, "p95"),
      ...(open
        ? [
            q(s.e2eCorrectedMs, "p95"),
            sched ? f(sched.lagMs.p99) : "",
            sched ? `${f(sched.late)}/${f(sched.dropped + sched.unsent)}` : "",
          ]
        : []),
      `${f(s.inFlight.mean)} (max ${f(s.inFlight.max)})`,
      sloCell(s.slo),
      [s.saturation?.saturated ? "saturated" : "", s.selfCheck?.clientBound ? "client-bound" : ""]
        .filter(Boolean)
        .join(", "),
    ];
  });
  return markdownTable([head, ...rows], { align: head.map((_, i) => (i === 0 ? "l" : "r")) });
}

/** A mermaid x-axis label: numbers and our own words only (no user text reaches a chart). */
function axisLabel(s: StepDigest, repeats: Map<number, number>): string {
  const n = repeats.get(s.load) ?? 0;
  repeats.set(s.load, n + 1);
  return `"${f(s.load)}${n ? ` #${n + 1}` : ""}"`;
}

const num = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "0" : formatNumber(v));

function stepCharts(all: StepDigest[], variable: string, slo: Record<string, unknown> | undefined): string[] {
  // One point per step, by load (the probes of a search are not in load order), first trial only.
  const steps = all.filter((s) => s.trial === all[0]!.trial).sort((a, b) => a.load - b.load || 0);
  if (steps.length < 2) return [];
  const repeats = new Map<number, number>();
  const xs = steps.map((s) => axisLabel(s, repeats)).join(", ");
  const open = variable === "rate";
  const e2e = (s: StepDigest) => (open ? (s.e2eCorrectedMs ?? s.e2eMs) : s.e2eMs);
  const bound = typeof slo?.e2eMs === "number" ? slo.e2eMs : undefined;
  const xTitle = variable === "rate" ? "arrival rate (req/s)" : "concurrency (users)";
  const latency = [
    "```mermaid",
    "xychart-beta",
    `  title "Latency vs load${open ? " (e2e from the intended start)" : ""}"`,
    `  x-axis "${xTitle}" [${xs}]`,
    `  y-axis "ms"`,
    `  line [${steps.map((s) => num(e2e(s)?.p95)).join(", ")}]`,
    `  line [${steps.map((s) => num(e2e(s)?.p50)).join(", ")}]`,
    `  line [${steps.map((s) => num(s.ttftMs?.p95)).join(", ")}]`,
    ...(bound === undefined ? [] : [`  line [${steps.map(() => num(bound)).join(", ")}]`]),
    "```",
    "",
    `Lines: e2e p95, e2e p50, TTFT p95${bound === undefined ? "" : `, SLO bound (${formatNumber(bound)} ms)`}.`,
  ];
  const hasGoodput = steps.some((s) => s.goodputRps !== undefined);
  const throughput = [
    "",
    "```mermaid",
    "xychart-beta",
    `  title "Throughput vs load"`,
    `  x-axis "${xTitle}" [${xs}]`,
    `  y-axis "req/s"`,
    `  bar [${steps.map((s) => num(s.requestsPerS)).join(", ")}]`,
    ...(hasGoodput ? [`  line [${steps.map((s) => num(s.goodputRps)).join(", ")}]`] : []),
    "```",
    "",
    `Bars: completed requests/s${hasGoodput ? "; line: goodput (requests/s meeting the SLO)" : ""}.`,
  ];
  return ["", ...latency, ...throughput];
}

// ---------------------------------------------------------------------------------------------------------------
// stress

function m(metrics: Record<string, MetricResult>, key: string, stat: "mean" | "p50" | "p95" | "p99"): string {
  return f(metrics[key]?.summary[stat]);
}

function taskRow(
  name: string,
  weight: string,
  share: string,
  s: Pick<ScenarioResult, "metrics" | "requests">,
): string[] {
  const r = s.requests;
  return [
    name,
    weight,
    share,
    `${f(r.succeeded)}/${f(r.attempted)}`,
    m(s.metrics, "requests_per_s", "mean"),
    m(s.metrics, "e2e_ms", "p50"),
    m(s.metrics, "e2e_ms", "p95"),
    m(s.metrics, "e2e_ms", "p99"),
    m(s.metrics, "ttft_ms", "p50"),
    m(s.metrics, "ttft_ms", "p95"),
    m(s.metrics, "output_tokens", "mean"),
    m(s.metrics, "goodput_rps", "mean"),
  ];
}

function taskSection(test: TestResult): string[] {
  const p = test.params;
  const think = Array.isArray(p.thinkTimeS)
    ? `between(${p.thinkTimeS.map((x) => f(x as number)).join(", ")}) s`
    : `${f((p.thinkTimeS as number) ?? 0)} s`;
  const lines = [
    "",
    `${f(p.users as number)} users${p.spawnRate ? ` started at ${f(p.spawnRate as number)}/s` : ""}, think time ${think}, ${f(p.durationS as number)} s measured.`,
  ];
  const fallbacks = (p.apiFallbacks as string[] | undefined) ?? [];
  if (fallbacks.length) lines.push("", `API fallbacks: ${fallbacks.map((x) => esc(x)).join("; ")}.`);
  const rows = test.scenarios.map((s) =>
    taskRow(
      `\`${esc(s.name)}\``,
      f(s.params.weight as number),
      `${pct(s.params.observedShare as number)} (${pct(s.params.expectedShare as number)})`,
      s,
    ),
  );
  rows.push(taskRow("**all**", "", "", test));
  const head = [
    "task",
    "weight",
    "share (expected)",
    "ok/all",
    "req/s",
    "e2e p50 ms",
    "p95",
    "p99",
    "TTFT p50",
    "TTFT p95",
    "tokens",
    "goodput",
  ];
  lines.push("", markdownTable([head, ...rows], { align: head.map((_, i) => (i === 0 ? "l" : "r")) }));
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// open loop

function openLoopSections(test: TestResult, extra: Record<string, unknown>): string[] {
  const runs =
    (extra.runs as Array<{
      schedule: ScheduleDigest;
      inFlight: { mean: number; max: number };
      saturation?: { saturated: boolean; reason: string };
      stoppedBy: string;
      drain: { cancelledAtDrain: number };
    }>) ?? [];
  const lines: string[] = [""];
  const head = [
    "trial",
    "arrivals",
    "requested req/s",
    "achieved req/s",
    "sent",
    `late`,
    "dropped",
    "never sent",
    "lag p50 ms",
    "lag p99 ms",
    "lag max ms",
    "in flight",
    "stopped by",
  ];
  const rows = runs.map((r, i) => {
    const s = r.schedule;
    return [
      f(i + 1),
      `${esc(s.pattern)}${s.shape !== undefined && s.pattern === "gamma" ? ` (shape ${f(s.shape)})` : ""}${s.maxConcurrency ? `, cap ${f(s.maxConcurrency)} (${esc(s.whenFull)})` : ""}`,
      f(s.requestedRatePerS),
      f(s.achievedRatePerS),
      f(s.sent),
      `${f(s.late)} (> ${f(s.lateMs)} ms)`,
      f(s.dropped),
      f(s.unsent),
      f(s.lagMs.p50),
      f(s.lagMs.p99),
      f(s.lagMs.max),
      `${f(r.inFlight.mean)} (max ${f(r.inFlight.max)})`,
      `${esc(r.stoppedBy)}${r.drain.cancelledAtDrain ? `, ${f(r.drain.cancelledAtDrain)} cancelled at drain` : ""}`,
    ];
  });
  if (rows.length) lines.push("Schedule:", "", markdownTable([head, ...rows], { align: head.map(() => "r") }));
  const mt = test.metrics;
  const pairs: Array<[string, string, string]> = [
    ["TTFT", "ttft_ms", "ttft_corrected_ms"],
    ["e2e", "e2e_ms", "e2e_corrected_ms"],
  ];
  const cmp = pairs.filter(([, raw, cor]) => mt[raw] && mt[cor]);
  if (cmp.length) {
    const h = [
      "latency (ms)",
      "raw p50",
      "corrected p50",
      "raw p95",
      "corrected p95",
      "raw p99",
      "corrected p99",
      "raw max",
      "corrected max",
    ];
    const r = cmp.map(([label, raw, cor]) => {
      const a = mt[raw]!.summary;
      const b = mt[cor]!.summary;
      return [label, f(a.p50), f(b.p50), f(a.p95), f(b.p95), f(a.p99), f(b.p99), f(a.max), f(b.max)];
    });
    lines.push(
      "",
      "Raw latencies are measured from the actual send; corrected ones from the intended start (what a user arriving on schedule waited, coordinated omission included).",
      "",
      markdownTable([h, ...r], { align: h.map((_, i) => (i === 0 ? "l" : "r")) }),
    );
    const e = mt.e2e_ms?.summary;
    const c = mt.e2e_corrected_ms?.summary;
    if (e && c && c.p99 > 2 * e.p99 && c.p99 - e.p99 > 10) {
      lines.push(
        "",
        `⚠️ Coordinated omission: e2e p99 is ${f(c.p99)} ms from the intended start but ${f(e.p99)} ms from the actual send: requests waited in the client (behind the concurrency cap or a late event loop) before they were sent. The raw percentiles understate what users would see.`,
      );
    }
  }
  for (const r of runs)
    if (r.saturation?.saturated) lines.push("", `📈 Saturation: ${esc(r.saturation.reason, { maxLength: 300 })}.`);
  const slo = extra.slo as SloOutcome | undefined;
  if (slo)
    lines.push(
      "",
      `SLO (${sloText(test.params.slo as Record<string, unknown>)}): ${slo.pass ? "✅" : "❌"} ${esc(slo.reason, { maxLength: 300 })}.`,
    );
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// client self-check

export function selfCheckLine(s: SelfCheckResult): string {
  const cpu = `${f(100 * s.cpuCoreFraction)}% of a CPU core${s.spinS > 0.01 * s.wallS ? ` (${f((100 * s.spinS) / Math.max(s.wallS, 1e-9))}% spin-waiting for the schedule)` : ""}`;
  const figures = `event-loop delay p99 ${f(s.eventLoopDelayMs.p99)} ms (max ${f(s.eventLoopDelayMs.max)} ms), ${cpu}`;
  if (!s.clientBound) return `Client self-check: ✅ tokengate kept up (${figures}).`;
  return `Client self-check: ⚠️ **the client, not the server, may have limited this test** (${figures}): ${s.reasons.map((r) => esc(r, { maxLength: 300 })).join("; ")}.`;
}
