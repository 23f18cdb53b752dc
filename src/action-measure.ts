/**
 * What the Action measures in each measuring mode, on the same engine as the CLI:
 * - `run`: the pipeline (a run, compared with `baseline`);
 * - `ab`: the same-runner A/B (arms/ab.ts), the base arm from the `base-*` inputs and the base ref's copy of the suite;
 * - `baseline`: `runs` separate runs, promoted into a candidate baseline (never judged against one) that is uploaded
 *   with the artifact, with the commands that commit it.
 * Each returns the outcome to publish and notes for the summary. action-main.ts publishes whatever it returns.
 */
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import { updateBaseline } from "./analysis/baseline.js";
import type { AbConfig, AbHooks } from "./arms/ab.js";
import { splitFlags } from "./arms/arm.js";
import type { ActionInputs } from "./config/action-inputs.js";
import { baseSuiteFromGit } from "./config/base-suite.js";
import type { RunConfig } from "./config/run-config.js";
import type { PipelineHooks, PipelineOutcome } from "./pipeline.js";
import { escapeMarkdown as esc } from "./report/escape.js";

/** A name in a code span: no markdown applies inside one, so only what could end the span is removed. */
function codeSpan(text: string): string {
  return `\`${text.replace(/[`\r\n]/g, "").slice(0, 200)}\``;
}

export interface MeasureDeps {
  runPipeline: (config: RunConfig, hooks?: PipelineHooks) => Promise<PipelineOutcome>;
  runAb: (config: AbConfig, hooks?: AbHooks) => Promise<PipelineOutcome>;
}

export interface Measured {
  outcome: PipelineOutcome;
  /** Lines for the job summary (already markdown: our words, user text escaped). */
  notes: string[];
}

function runConfig(inputs: ActionInputs, outDir: string): RunConfig {
  return {
    outDir,
    ...(inputs.suiteFile ? { suiteFile: inputs.suiteFile } : {}),
    ...(inputs.target ? { target: inputs.target } : {}),
    ...(inputs.modelPath ? { modelPath: inputs.modelPath } : {}),
    ...(inputs.serverBin ? { serverBin: inputs.serverBin } : {}),
    ...(inputs.url ? { url: inputs.url } : {}),
    ...(inputs.apiKeyEnv ? { apiKeyEnv: inputs.apiKeyEnv } : {}),
  };
}

export async function measureForMode(
  deps: MeasureDeps,
  inputs: ActionInputs,
  outDir: string,
  hooks: PipelineHooks,
): Promise<Measured> {
  if (inputs.mode === "ab") return measureAb(deps, inputs, outDir, hooks);
  if (inputs.mode === "baseline") return measureBaseline(deps, inputs, outDir, hooks);
  const outcome = await deps.runPipeline(
    { ...runConfig(inputs, outDir), ...(inputs.baselinePath ? { baselinePath: inputs.baselinePath } : {}) },
    hooks,
  );
  return { outcome, notes: [] };
}

async function measureAb(
  deps: MeasureDeps,
  inputs: ActionInputs,
  outDir: string,
  hooks: PipelineHooks,
): Promise<Measured> {
  const notes: string[] = [];
  const ab = inputs.ab;
  let baseSuiteFile = ab.baseSuiteFile;
  if (!baseSuiteFile && inputs.suiteFile && ab.baseRef) {
    mkdirSync(outDir, { recursive: true });
    const found = await baseSuiteFromGit(inputs.suiteFile, ab.baseRef, outDir);
    if (found.file) baseSuiteFile = found.file;
    notes.push(`A/B: ${esc(found.note, { maxLength: 400 })}.`);
  }
  const base = {
    label: ab.baseRef ? `base (${ab.baseRef})` : "base",
    ...(baseSuiteFile ? { suiteFile: baseSuiteFile } : {}),
    ...((ab.baseServerBin ?? inputs.serverBin) ? { serverBin: (ab.baseServerBin ?? inputs.serverBin)! } : {}),
    ...((ab.baseModelPath ?? inputs.modelPath) ? { modelPath: (ab.baseModelPath ?? inputs.modelPath)! } : {}),
    ...((ab.baseServerFlags ?? ab.serverFlags) !== undefined
      ? { serverFlags: splitFlags((ab.baseServerFlags ?? ab.serverFlags)!, "input base-server-flags") }
      : {}),
  };
  const head = {
    label: "head",
    ...(inputs.serverBin ? { serverBin: inputs.serverBin } : {}),
    ...(inputs.modelPath ? { modelPath: inputs.modelPath } : {}),
    ...(ab.serverFlags !== undefined ? { serverFlags: splitFlags(ab.serverFlags, "input server-flags") } : {}),
  };
  const outcome = await deps.runAb(
    { base: runConfig(inputs, outDir), a: base, b: head, ...(ab.pairs ? { pairs: ab.pairs } : {}) },
    hooks,
  );
  return { outcome, notes };
}

async function measureBaseline(
  deps: MeasureDeps,
  inputs: ActionInputs,
  outDir: string,
  hooks: PipelineHooks,
): Promise<Measured> {
  const runs: PipelineOutcome[] = [];
  for (let i = 1; i <= inputs.baselineRuns; i++) {
    hooks.log?.(`tokengate: baseline run ${i} of ${inputs.baselineRuns} (each in a fresh server)`);
    runs.push(await deps.runPipeline(runConfig(inputs, join(outDir, `run-${i}`)), hooks));
  }
  const last = runs.at(-1)!;
  const name = inputs.baselineName ?? last.results.suite.name;
  const to = join(outDir, `${name}.json`);
  const made = await updateBaseline({ from: runs.map((r) => r.files.results), to, name });
  const file = codeSpan(basename(to));
  const target = codeSpan(`baselines/${basename(to)}`);
  const notes = [
    `Candidate baseline ${file} (${runs.length} runs) is in the artifact. To adopt it: download the artifact, copy it to ${target} and open a pull request, so the baseline is reviewed like code (${codeSpan("gh run download <run id> -n <artifact>")}; locally the same file comes from ${codeSpan(`tokengate baseline update --from run-1/results.json ... --to baselines/${basename(to)}`)}).`,
    ...made.warnings.map((w) => `⚠️ ${esc(w, { maxLength: 400 })}`),
  ];
  const outcome: PipelineOutcome = {
    ...last,
    outDir,
    files: { ...last.files, extra: [...last.files.extra, to, ...runs.slice(0, -1).map((r) => r.files.results)] },
  };
  return { outcome, notes };
}
