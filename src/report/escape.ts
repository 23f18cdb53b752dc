/**
 * Escaping for text that did not come from tokengate itself: model names and paths, prompts, suite fields, server
 * output, PR data, and everything read back from an artifact of another (possibly fork) run.
 *
 * The output is one line of inert text for GitHub-flavoured markdown (PR comments, job summaries, report.md):
 * - no HTML: `<`, `>` and `&` become entities, so no tag, no `<!-- -->` (which could forge our sticky-comment marker),
 *   no `<img>` beacon, no `<details>` that swallows the rest of the comment;
 * - no markdown structure: inline punctuation is backslash-escaped (links, images, emphasis, code spans, tables, math),
 *   and newlines become spaces, so a value can never start a heading, a list or a new table row;
 * - no notifications or cross-references: GitHub links `@user`, `@org/team` and `#123` AFTER markdown is rendered, so
 *   a backslash does not stop them; a zero-width space after `@` and `#` does;
 * - control characters and bidi overrides (which can make a cell read differently from what it is) are removed.
 */

const ZERO_WIDTH_SPACE = "\u200b";

/** Characters that start inline markdown constructs. Escaping any ASCII punctuation is valid CommonMark. */
const MARKDOWN_PUNCTUATION = /[\\`*_{}[\]()!|~$#+=-]/g;

/** C0/C1 controls except tab/newline (handled separately), DEL, and bidi embedding/override/isolate characters. */
const UNSAFE_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export interface EscapeOptions {
  /** Longest result (in UTF-16 units, before escaping); longer text is cut and ends with `…`. Default 300. */
  maxLength?: number;
}

/** `text` as one line of inert markdown text. Safe inside a table cell and inside inline HTML such as `<summary>`. */
export function escapeMarkdown(text: unknown, options: EscapeOptions = {}): string {
  const maxLength = options.maxLength ?? 300;
  let s = typeof text === "string" ? text : String(text);
  s = s.replace(UNSAFE_CHARS, "").replace(/[\t\r\n]+/g, " ");
  if (s.length > maxLength) s = `${s.slice(0, Math.max(0, maxLength - 1))}…`;
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(MARKDOWN_PUNCTUATION, (c) => `\\${c}`)
    .replace(/([@#])/g, `$1${ZERO_WIDTH_SPACE}`);
}

/**
 * A slug for identifiers we build from untrusted text (comment markers, artifact names): only `[A-Za-z0-9._-]`, at most
 * `maxLength` characters, never empty.
 */
export function slug(text: unknown, maxLength = 80): string {
  const s = String(text)
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, maxLength);
  return s === "" ? "default" : s;
}
