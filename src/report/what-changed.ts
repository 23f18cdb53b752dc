import type { ConfigurationChange } from "../measure/results.js";
import { escapeMarkdown as esc } from "./escape.js";

/**
 * The "What changed" line of a report or PR comment in markdown: `**What changed:** llama.cpp build b6000 → b6100;
 * --parallel 8 → 16`. Every label and value is escaped (they come from server output, flags and files); the arrow
 * and separators are ours.
 */
export function whatChangedMarkdown(changes: readonly ConfigurationChange[], max = 12): string {
  if (changes.length === 0) return "**What changed:** nothing (same configuration)";
  const shown = changes
    .slice(0, max)
    .map(
      (c) =>
        `${esc(c.label, { maxLength: 80 })} ${esc(c.baseline, { maxLength: 160 })} → ${esc(c.run, { maxLength: 160 })}`,
    );
  const more = changes.length - shown.length;
  return `**What changed:** ${shown.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
}
