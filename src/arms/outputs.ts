/**
 * The files a judged run leaves in its output folder: results.json (final), report.md, report.html and the exports.
 * Shared by `tokengate run` and `tokengate ab`, so both write the same files the same way.
 */
import { join } from "node:path";
import type { Comparison } from "../analysis/decide.js";
import { analyzeRun } from "../analysis/recommendations.js";
import type { Results } from "../measure/results.js";
import { REPORT_FILES, renderReportFiles } from "../report/exports.js";
import { renderMarkdown } from "../report/markdown.js";
import { writeJsonAtomic, writeTextAtomic } from "../report/write.js";
import type { ExitCodeValue } from "../util/errors.js";

export interface PipelineFiles {
  results: string;
  records: string;
  reportMd: string;
  reportHtml?: string;
  serverLog?: string;
  extra: string[];
}

/** What a judged run (`tokengate run`) or A/B (`tokengate ab`) returns to its entry. */
export interface JudgedOutcome {
  results: Results;
  outDir: string;
  files: PipelineFiles;
  reportMarkdown: string;
  exitCode: ExitCodeValue;
}

export function outputFiles(outDir: string): PipelineFiles {
  return {
    results: join(outDir, "results.json"),
    records: join(outDir, "records.ndjson"),
    reportMd: join(outDir, "report.md"),
    extra: [],
  };
}

/** Adds the analysis, writes results.json and every report; returns report.md's text. */
export async function writeOutputs(
  results: Results,
  comparison: Comparison | undefined,
  outDir: string,
  files: PipelineFiles,
): Promise<string> {
  results.finishedAt = new Date().toISOString();
  results.analysis = analyzeRun(results);
  writeJsonAtomic(files.results, results);
  const reportMarkdown = renderMarkdown(results, comparison);
  writeTextAtomic(files.reportMd, reportMarkdown);
  const more = await renderReportFiles(results, {
    ...(comparison?.baseline ? { comparisonLabel: comparison.label } : {}),
    ...(comparison?.note ? { comparisonNote: comparison.note } : {}),
  });
  for (const [name, text] of Object.entries(more)) {
    writeTextAtomic(join(outDir, name), text);
    if (name === REPORT_FILES.html) files.reportHtml = join(outDir, name);
    else files.extra.push(join(outDir, name));
  }
  return reportMarkdown;
}
