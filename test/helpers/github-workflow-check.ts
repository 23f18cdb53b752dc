/**
 * Validates workflow files and action.yml with GitHub's own parser (@actions/workflow-parser) and prints
 * `{ "<file>": ["error", ...] }` as JSON. A separate script run with tsx, because the parser imports its JSON schemas
 * without import attributes, which Node (and vitest, which leaves node_modules to Node) refuses.
 *
 * Usage: tsx test/helpers/github-workflow-check.ts <file>...   (files named action.yml are checked as action metadata)
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from "@actions/workflow-parser";
// The action-metadata parser is not in the package's exports map; it ships in dist/actions.
import { parseAction } from "../../node_modules/@actions/workflow-parser/dist/actions/action-parser.js";

const out: Record<string, string[]> = {};
for (const file of process.argv.slice(2)) {
  const content = readFileSync(file, "utf8");
  if (basename(file) === "action.yml") {
    const parsed = parseAction({ name: file, content }, new NoOperationTraceWriter());
    out[file] = parsed.context.errors.getErrors().map((e) => e.message);
    continue;
  }
  const parsed = parseWorkflow({ name: file, content }, new NoOperationTraceWriter());
  const errors = parsed.context.errors.getErrors().map((e) => e.message);
  if (parsed.value !== undefined) {
    // Conversion checks what the schema cannot (job dependencies, matrix, expressions in context).
    const template = await convertWorkflowTemplate(parsed.context, parsed.value);
    for (const e of template.errors ?? []) if (!errors.includes(e.Message)) errors.push(e.Message);
  }
  out[file] = errors;
}
process.stdout.write(`${JSON.stringify(out)}\n`);
