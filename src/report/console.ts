import { describeChanges } from "../analysis/fingerprint.js";
import { checkLabel, formatValue } from "../analysis/format.js";
import type { Check, Results, VerdictLevel } from "../measure/results.js";

export const VERDICT_ICON: Record<VerdictLevel, string> = { pass: "✅", warn: "⚠️ ", fail: "❌" };

/** A few headline numbers per test, even when no target covers them. */
const HEADLINE: Array<[metric: string, stat: "p50" | "p95" | "mean"]> = [
  ["ttft_ms", "p50"],
  ["ttft_ms", "p95"],
  ["e2e_ms", "p95"],
  ["decode_tokens_per_s", "p50"],
  ["output_tokens_per_s", "mean"],
  ["requests_per_s", "mean"],
  ["error_rate", "mean"],
];

function checkLine(c: Check): string {
  return `  ${VERDICT_ICON[c.verdict]} ${c.reason}`;
}

/** The seed's report style: `✅ TTFT p95: 0.145s (target: <0.2s)`, then the overall verdict. Pure. */
export function renderConsole(results: Results): string {
  const lines: string[] = [];
  const t = results.environment.target;
  lines.push(
    `Performance Test Results: suite ${results.suite.name}, ${t.kind}${t.model?.path ? ` (${t.model.path.split("/").pop()})` : ""}`,
  );
  if (results.verdict.changes) lines.push(`What changed: ${describeChanges(results.verdict.changes)}`);
  for (const test of results.tests) {
    lines.push(
      `${test.name} (${test.kind}, ${test.requests.succeeded}/${test.requests.attempted} requests ok, ${test.trials} trial${test.trials > 1 ? "s" : ""})`,
    );
    const numbers = HEADLINE.flatMap(([metric, stat]) => {
      const m = test.metrics[metric];
      if (!m || !Number.isFinite(m.summary[stat])) return [];
      return [
        `${checkLabel(metric, stat, m.trials.length > 0 && m.histogram === undefined)} ${formatValue(m.summary[stat], m.unit)}`,
      ];
    });
    if (numbers.length) lines.push(`  ${numbers.join(" | ")}`);
    if (test.requests.shortfalls > 0)
      lines.push(`  ⚠️  ${test.requests.shortfalls} requests produced fewer tokens than asked`);
    if (test.aborted) lines.push(`  ❌ aborted: ${test.aborted}`);
    for (const c of results.verdict.checks.filter((c) => c.test === test.name)) lines.push(checkLine(c));
  }
  for (const c of results.verdict.checks.filter((c) => !results.tests.some((t) => t.name === c.test)))
    lines.push(checkLine(c));
  lines.push(
    `Overall: ${VERDICT_ICON[results.verdict.overall]} ${results.verdict.overall.toUpperCase()}: ${results.verdict.reason}`,
  );
  return lines.join("\n");
}
