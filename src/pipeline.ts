import { mkdirSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import {
  type Comparison,
  confirmVerdict,
  decideVerdict,
  prepareBaseline,
  resolveComparison,
} from "./analysis/decide.js";
import { policyFromBlock } from "./analysis/policy.js";
import { markStopped, planConfirmation } from "./analysis/verdict.js";
import { measureRun } from "./arms/measure-run.js";
import { type JudgedOutcome, outputFiles, writeOutputs } from "./arms/outputs.js";
import { checkOutDir } from "./config/out-dir.js";
import type { RunConfig } from "./config/run-config.js";
import { loadSuite } from "./config/suite-loader.js";
import { RecordSink } from "./measure/record-sink.js";
import type { Results } from "./measure/results.js";
import { renderConsole } from "./report/console.js";
import { writeJsonAtomic } from "./report/write.js";
import { testName } from "./suite/index.js";
import { planTarget } from "./target/index.js";
import type { Endpoint, Target } from "./target/types.js";
import { onInterrupt } from "./util/children.js";

export type { PipelineFiles } from "./arms/outputs.js";

export type PipelineOutcome = JudgedOutcome;

export interface PipelineHooks {
  /** Where progress lines and the console report go. Default: stderr. */
  log?: (line: string) => void;
  /** Called once the target is up (the Action records server PIDs for its post step; tests inject faults). */
  onTargetStarted?: (target: Target, endpoint: Endpoint) => void;
}

/**
 * `tokengate run`: config -> one measured run (arms/measure-run.ts owns the server) -> verdict against targets and
 * the baseline -> a confirmation rerun in a fresh server when a baseline comparison fails -> reports. Results are on
 * disk as they are produced (records.ndjson per request, results.json after every test).
 */
export async function runPipeline(config: RunConfig, hooks: PipelineHooks = {}): Promise<PipelineOutcome> {
  checkOutDir(config.outDir); // bad --out is exit 2 before anything is loaded or sent (src/config/out-dir.ts)
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const loaded = loadSuite(config.suiteFile);
  const { suite } = loaded;
  // A broken baseline is bad input: say so before spending minutes measuring.
  const baseline = config.baselinePath ? await prepareBaseline(config.baselinePath) : undefined;
  const outDir = resolve(config.outDir);
  mkdirSync(outDir, { recursive: true });
  const files = outputFiles(outDir);
  rmSync(files.records, { force: true });

  const plan = await planTarget(suite, config);
  if (plan.embeddedDefault) log(`tokengate: no model given: using the embedded synthetic tiny model (${plan.model})`);
  const sink = new RecordSink(files.records);
  const policy = policyFromBlock(suite.policy);
  // SIGINT/SIGTERM end the run cleanly: stop measuring, judge and write what was measured, exit 130/143.
  const interrupt = new AbortController();
  const offInterrupt = onInterrupt((signal) => {
    log(`tokengate: ${signal}: stopping the run and writing what was measured`);
    interrupt.abort(`interrupted by ${signal}`);
  });
  let results: Results;
  let comparison: Comparison | undefined;
  try {
    const first = await measureRun({
      loaded,
      plan,
      config,
      sink,
      log,
      signal: interrupt.signal,
      onProgress: (partial) => writeJsonAtomic(files.results, partial),
      ...(hooks.onTargetStarted ? { onTargetStarted: hooks.onTargetStarted } : {}),
    });
    if (first.serverLog) files.serverLog = first.serverLog;
    results = first.results;
    if (baseline) comparison = await resolveComparison(baseline, results);
    results.verdict = decideVerdict(results, suite, comparison);
    if (first.stopped) markStopped(results, first.stopped, interrupt.signal.aborted);
    // A baseline comparison that fails is rerun once, in a fresh server process, before it is believed: runner
    // noise persists for a whole run (docs/verdicts.md), so the rerun is a second candidate run, not more trials.
    // Targets and crashes are not rerun: a rerun cannot make them untrue.
    const confirm = planConfirmation(results.verdict, policy);
    if (confirm.needed && !first.stopped) {
      log(`tokengate: ${confirm.reason} (in a fresh ${plan.kind} process)`);
      const rerun = await measureRun({
        loaded,
        plan,
        config,
        sink,
        log,
        label: "confirmation rerun",
        signal: interrupt.signal,
        tests: suite.tests.filter((t) => confirm.tests.includes(testName(t))),
        ...(hooks.onTargetStarted ? { onTargetStarted: hooks.onTargetStarted } : {}),
      });
      results.verdict = confirmVerdict(results, rerun.results, comparison, policy);
      if (rerun.stopped) markStopped(results, `confirmation rerun: ${rerun.stopped}`, interrupt.signal.aborted);
    }
  } finally {
    sink.close();
    offInterrupt();
  }

  const reportMarkdown = await writeOutputs(results, comparison, outDir, files);
  log(renderConsole(results));
  return { results, outDir, files, reportMarkdown, exitCode: results.verdict.overall === "fail" ? 1 : 0 };
}
