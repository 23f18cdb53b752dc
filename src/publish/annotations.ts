/**
 * Annotations for the worst regressions. GitHub keeps at most 10 warning and 10 error annotations per step (50 per job),
 * so we emit at most MAX_ANNOTATIONS in total, worst first, and say how many more there are in the last one.
 *
 * Annotation text is plain text in the UI (not markdown), but it still comes from a results file: it is kept to one
 * line and length-capped, and workflow-command injection is impossible because @actions/core escapes `%`, CR and LF.
 */
import type { AnnotationProperties } from "@actions/core";
import { changeOf, fmt, regressionsOf } from "./render.js";
import type { PublishView } from "./view.js";

export const MAX_ANNOTATIONS = 10;

export interface AnnotationSink {
  warning(message: string, properties?: AnnotationProperties): void;
  error(message: string, properties?: AnnotationProperties): void;
}

function oneLine(s: string, max = 300): string {
  const t = s.replace(/[\r\n\t]+/g, " ");
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/**
 * Emits one annotation per regression (fail -> error, warn -> warning), at most `max`. `file` (the suite file, relative
 * to the workspace) anchors them in the PR's Files view. Returns the number emitted.
 */
export function annotateRegressions(
  view: PublishView,
  sink: AnnotationSink,
  options: { file?: string; legLabel?: string; max?: number } = {},
): number {
  const max = options.max ?? MAX_ANNOTATIONS;
  const regressions = regressionsOf(view);
  const shown = regressions.slice(0, max);
  shown.forEach((c, i) => {
    const ch = changeOf(c);
    const change =
      ch === undefined
        ? ""
        : ` (${ch >= 0 ? "+" : ""}${(ch * 100).toFixed(1)}%: ${fmt(c.value)} vs ${fmt(c.reference)})`;
    const more =
      i === shown.length - 1 && regressions.length > shown.length
        ? ` [${regressions.length - shown.length} more in the job summary]`
        : "";
    const message = oneLine(`${c.test} ${c.metric}${change}: ${c.reason}`) + more;
    const props: AnnotationProperties = {
      title: oneLine(
        `tokengate ${c.verdict}: ${c.test} ${c.metric}${options.legLabel ? ` [${options.legLabel}]` : ""}`,
        120,
      ),
    };
    if (options.file) props.file = options.file;
    if (c.verdict === "fail") sink.error(message, props);
    else sink.warning(message, props);
  });
  return shown.length;
}
