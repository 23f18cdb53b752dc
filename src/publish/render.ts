/**
 * PR comment and job summary as markdown. Pure: a PublishView (see view.ts) in, a string out.
 *
 * Every string that comes from a results file goes through `escapeMarkdown()` (model paths, suite and test names, check
 * reasons, GPU names...): in `mode: report` the file came from a fork's artifact. Numbers are formatted here, never
 * copied as text. Only text written in this file (and URLs built from the trusted run context) is emitted raw.
 *
 * Size limits (GitHub's, see shared research peers-ci-gating.md §4.3-4.4):
 * - a PR comment may be at most 65,536 characters; we aim for COMMENT_SAFE_CHARS and fall back to a truncated view
 *   that keeps the verdict, the reason and as many regressions as fit;
 * - a step summary over 1 MiB is dropped whole by the runner, so we stay under SUMMARY_BUDGET_BYTES by leaving out
 *   detail first (the full report, then per-test tables) and saying what was left out.
 */
import { escapeMarkdown as esc } from "../report/escape.js";
import { whatChangedMarkdown } from "../report/what-changed.js";
import type { PublishCheck, PublishTest, PublishView } from "./view.js";

export const COMMENT_MAX_CHARS = 65_536;
/** Headroom under COMMENT_MAX_CHARS: JS counts UTF-16 units (more than GitHub's characters), and we'd rather not test the edge. */
export const COMMENT_SAFE_CHARS = 60_000;
/** The runner aborts summaries over 1024 KiB ("supports content up to a size of 1024k"); keep ~5% headroom. */
export const SUMMARY_BUDGET_BYTES = 1_000_000;
/** Regressions shown in the full view before "N more". */
const MAX_REGRESSION_ROWS = 50;
const MAX_CHECK_ROWS = 300;
const MAX_METRIC_ROWS_PER_TEST = 40;

const ICON = { pass: "✅", warn: "⚠️", fail: "❌" } as const;

export interface RenderInfo {
  /** The sticky-comment marker, put last (it is how the comment is found again). */
  marker: string;
  /** Matrix leg, for people (escaped here). */
  legLabel: string;
  /** Link to the workflow run that measured (built from the trusted context, not from the results file). */
  runUrl?: string;
  /** The artifact holding results.json, records, report.md/html and logs. */
  artifact?: { name: string; url?: string };
  /** Extra lines written by tokengate itself (not escaped): publish problems, fork notes. */
  notes?: string[];
}

/** Checks that did not pass, worst first: fail before warn, then by the size of the change. */
export function regressionsOf(view: PublishView): PublishCheck[] {
  return view.verdict.checks
    .filter((c) => c.verdict !== "pass")
    .sort((a, b) => rank(b) - rank(a) || Math.abs(changeOf(b) ?? 0) - Math.abs(changeOf(a) ?? 0));
}

function rank(c: PublishCheck): number {
  return c.verdict === "fail" ? 2 : c.verdict === "warn" ? 1 : 0;
}

/**
 * Relative change of value vs the baseline (0.12 = +12%). Only for baseline checks: against an absolute target
 * ("error_rate < 0.01") a percentage says nothing useful.
 */
export function changeOf(c: PublishCheck): number | undefined {
  if (c.source !== "baseline" || c.value === undefined || c.reference === undefined || c.reference === 0)
    return undefined;
  return c.value / c.reference - 1;
}

/** Numbers for people: integers above 1000, else 4 significant digits. Never exponent notation for normal ranges. */
export function fmt(n: number | undefined): string {
  if (n === undefined) return "";
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toString();
  if (n === 0) return "0";
  return Number(n.toPrecision(4)).toString();
}

function fmtChange(c: PublishCheck): string {
  const ch = changeOf(c);
  if (ch === undefined) return "";
  const pct = ch * 100;
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(1)}%`;
}

function header(view: PublishView, info: RenderInfo): string {
  const v = view.verdict.overall;
  return [
    `### ${ICON[v]} tokengate: **${v}** · ${esc(view.suite.name)} · ${esc(info.legLabel)}`,
    "",
    esc(view.verdict.reason, { maxLength: 1000 }),
    "",
    ...(view.verdict.changes ? [whatChangedMarkdown(view.verdict.changes), ""] : []),
  ].join("\n");
}

function checkTable(checks: PublishCheck[]): string {
  const rows = checks.map(
    (c) =>
      `| ${ICON[c.verdict]} ${c.verdict} | ${esc(c.test, { maxLength: 80 })} | ${esc(c.metric, { maxLength: 80 })} | ${fmt(c.value)} | ${fmt(c.reference)} | ${fmtChange(c)} | ${esc(c.source)} | ${esc(c.reason)} |`,
  );
  return [
    "| | Test | Metric | Value | Reference | Change | Against | Why |",
    "|---|---|---|--:|--:|--:|---|---|",
    ...rows,
  ].join("\n");
}

function regressionSection(view: PublishView, maxRows: number): string {
  const regressions = regressionsOf(view);
  if (regressions.length === 0) {
    return `No regressions: all ${view.verdict.checks.length} checks pass.\n`;
  }
  const fails = regressions.filter((c) => c.verdict === "fail").length;
  const shown = regressions.slice(0, maxRows);
  const more = regressions.length - shown.length;
  return [
    `**${regressions.length} regression${regressions.length === 1 ? "" : "s"}** (${fails} fail, ${regressions.length - fails} warn)`,
    "",
    checkTable(shown),
    more > 0 ? `\n…and ${more} more (see the job summary and results.json in the artifact).` : "",
    "",
  ].join("\n");
}

function testTable(t: PublishTest): string {
  const entries = Object.entries(t.metrics);
  const shown = entries.slice(0, MAX_METRIC_ROWS_PER_TEST);
  const status = t.aborted ? ` · aborted: ${esc(t.aborted)}` : "";
  return [
    `**${esc(t.name, { maxLength: 100 })}** (${esc(t.kind, { maxLength: 40 })}) · ${fmt(t.requests.succeeded)}/${fmt(t.requests.attempted)} requests ok${status}`,
    "",
    "| Metric | Unit | p50 | p95 | p99 | mean | better |",
    "|---|---|--:|--:|--:|--:|---|",
    ...shown.map(
      ([name, m]) =>
        `| ${esc(name, { maxLength: 80 })} | ${esc(m.unit, { maxLength: 20 })} | ${fmt(m.summary.p50)} | ${fmt(m.summary.p95)} | ${fmt(m.summary.p99)} | ${fmt(m.summary.mean)} | ${m.better} |`,
    ),
    entries.length > shown.length ? `\n…and ${entries.length - shown.length} more metrics in results.json.` : "",
    "",
  ].join("\n");
}

function details(summary: string, body: string): string {
  // Blank lines around the body: GitHub only renders markdown inside <details> when it is separated from the tags.
  return `<details><summary>${summary}</summary>\n\n${body}\n</details>\n`;
}

function environmentLine(view: PublishView): string {
  const env = view.environment;
  const model = env.target.model;
  const parts = [
    `tokengate ${esc(view.tool.version, { maxLength: 40 })}`,
    `target ${esc(env.target.kind, { maxLength: 40 })}${env.target.build ? ` ${esc(env.target.build, { maxLength: 60 })}` : ""}`,
  ];
  if (model?.path) {
    const name = model.path.split(/[\\/]/).pop() ?? model.path;
    parts.push(
      `model ${esc(name, { maxLength: 80 })}${model.quantization ? ` ${esc(model.quantization, { maxLength: 20 })}` : ""}${model.synthetic ? " (synthetic)" : ""}`,
    );
  }
  parts.push(
    env.gpus.length > 0
      ? `GPU ${env.gpus.map((g) => esc(g.name, { maxLength: 60 })).join(", ")}${env.cuda ? `, CUDA ${esc(env.cuda, { maxLength: 20 })}` : ""}`
      : `CPU ${esc(env.cpuModel, { maxLength: 60 })} ×${fmt(env.cpuCount)}`,
  );
  return parts.join(" · ");
}

function footer(view: PublishView, info: RenderInfo): string {
  const links: string[] = [];
  if (info.runUrl) links.push(`[workflow run](${info.runUrl})`);
  if (info.artifact) {
    const name = esc(info.artifact.name, { maxLength: 120 });
    links.push(info.artifact.url ? `artifact [${name}](${info.artifact.url})` : `artifact ${name}`);
  }
  return `<sub>${[environmentLine(view), ...links].join(" · ")}</sub>\n`;
}

function notesBlock(info: RenderInfo): string {
  return info.notes && info.notes.length > 0 ? `${info.notes.map((n) => `> ${n}`).join("\n>\n")}\n` : "";
}

/** The full view: verdict, regressions, per-test results and all checks in collapsed sections. */
function fullBody(view: PublishView, info: RenderInfo): string {
  const checks = view.verdict.checks.slice(0, MAX_CHECK_ROWS);
  const moreChecks = view.verdict.checks.length - checks.length;
  return [
    header(view, info),
    notesBlock(info),
    regressionSection(view, MAX_REGRESSION_ROWS),
    view.tests.length > 0
      ? details(`Results per test (${view.tests.length})`, view.tests.map(testTable).join("\n"))
      : "",
    checks.length > 0
      ? details(
          `All checks (${view.verdict.checks.length})`,
          checkTable(checks) + (moreChecks > 0 ? `\n\n…and ${moreChecks} more in results.json.` : ""),
        )
      : "",
    footer(view, info),
  ]
    .filter((s) => s !== "")
    .join("\n");
}

/** The truncated view: verdict, reason and the worst `maxRows` regressions, plus a note saying what was left out. */
function truncatedBody(
  view: PublishView,
  info: RenderInfo,
  maxRows: number,
  fullChars: number,
  limitText: string,
): string {
  return [
    header(view, info),
    notesBlock(info),
    regressionSection(view, maxRows),
    `> ⚠️ Truncated view: the full report is ${fullChars.toLocaleString("en-US")} characters, over ${limitText}. Per-test results and passing checks are left out here; they are in the job summary and in results.json / report.md in the artifact.\n`,
    footer(view, info),
  ]
    .filter((s) => s !== "")
    .join("\n");
}

export interface RenderedComment {
  body: string;
  truncated: boolean;
}

/**
 * The sticky PR comment. Always at most COMMENT_SAFE_CHARS characters (well under GitHub's 65,536), ends with the marker.
 */
export function renderComment(view: PublishView, info: RenderInfo): RenderedComment {
  const tail = `\n${info.marker}`;
  const full = fullBody(view, info) + tail;
  if (full.length <= COMMENT_SAFE_CHARS) return { body: full, truncated: false };
  return {
    body: fitTruncated(
      view,
      info,
      full.length,
      "the 65,536 characters a GitHub comment can hold",
      COMMENT_SAFE_CHARS,
      (s) => s.length,
      tail,
    ),
    truncated: true,
  };
}

function fitTruncated(
  view: PublishView,
  info: RenderInfo,
  fullSize: number,
  limitText: string,
  budget: number,
  size: (s: string) => number,
  tail: string,
): string {
  // Fewer rows until it fits; a row is at most a few hundred characters (every cell is length-capped), so this halves
  // from the number of regressions and ends at 0 rows in the worst case (header + note + footer alone are ~3 KB).
  let rows = Math.min(regressionsOf(view).length, MAX_REGRESSION_ROWS);
  for (;;) {
    const body = truncatedBody(view, info, rows, fullSize, limitText) + tail;
    if (size(body) <= budget || rows === 0) return body;
    rows = Math.floor(rows / 2);
  }
}

export interface SummarySection {
  view: PublishView;
  info: RenderInfo;
  /** The full markdown report (report.md) of a run in this job: trusted, shown after the verdict when it fits. */
  reportMarkdown?: string;
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

/**
 * The job summary for one or more legs, at most `budget` bytes (UTF-8). Detail is dropped in this order, and the summary
 * says so: the full reports, then the per-test and all-checks sections (truncated views).
 */
export function renderSummary(
  sections: SummarySection[],
  budget = SUMMARY_BUDGET_BYTES,
): { markdown: string; dropped: string[] } {
  const withReports = sections.map((s) => {
    const top = fullBody(s.view, s.info);
    return s.reportMarkdown ? `${top}\n${details("Full report", s.reportMarkdown)}` : top;
  });
  let md = withReports.join("\n---\n\n");
  if (bytes(md) <= budget) return { markdown: md, dropped: [] };

  const dropped = ["full reports"];
  const droppedNote = (size: number) =>
    `> ⚠️ The full report was left out of this summary: with it the summary is ${size.toLocaleString("en-US")} bytes, and GitHub discards step summaries over 1 MiB. It is report.md in the artifact.\n`;
  const fullSize = bytes(md);
  const noReports = sections.map((s) => {
    const note = s.reportMarkdown ? [droppedNote(fullSize)] : [];
    return fullBody(s.view, { ...s.info, notes: [...(s.info.notes ?? []), ...note] });
  });
  md = noReports.join("\n---\n\n");
  if (bytes(md) <= budget) return { markdown: md, dropped };

  dropped.push("per-test results and passing checks");
  const per = Math.floor(budget / Math.max(1, sections.length));
  md = sections
    .map((s) => fitTruncated(s.view, s.info, fullSize, "the 1 MiB GitHub allows a step summary", per - 16, bytes, ""))
    .join("\n---\n\n");
  return { markdown: md, dropped };
}

/** The hidden marker that makes a comment sticky: one per suite and matrix leg (both slugs, so it cannot be forged). */
export function commentMarker(suiteSlug: string, legId: string): string {
  return `<!-- tokengate:${suiteSlug}:${legId} -->`;
}
