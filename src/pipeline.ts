import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type Comparison,
  confirmVerdict,
  decideVerdict,
  prepareBaseline,
  resolveComparison,
} from "./analysis/decide.js";
import { policyFromBlock } from "./analysis/policy.js";
import { analyzeRun } from "./analysis/recommendations.js";
import { planConfirmation } from "./analysis/verdict.js";
import { StreamClient } from "./client/stream-client.js";
import type { RunConfig } from "./config/run-config.js";
import { loadSuite } from "./config/suite-loader.js";
import type { Suite, SuiteTest } from "./config/suite-schema.js";
import { environmentFingerprint } from "./measure/environment.js";
import { startMachineSampler } from "./measure/machine-load.js";
import { RecordSink } from "./measure/record-sink.js";
import { RESULTS_SCHEMA_VERSION, type Results, type TestResult } from "./measure/results.js";
import { startServerSampler } from "./measure/server-metrics.js";
import { renderConsole } from "./report/console.js";
import { REPORT_FILES, renderReportFiles } from "./report/exports.js";
import { renderMarkdown } from "./report/markdown.js";
import { writeJsonAtomic, writeTextAtomic } from "./report/write.js";
import type { TestContext } from "./suite/context.js";
import { plannedRequests, runTest, testName, trialsFor } from "./suite/index.js";
import { probeResetFor } from "./suite/probe-reset.js";
import { llamaServerRestarter, type RestartTarget } from "./suite/scaling.js";
import { createTarget, llamaServerOptions, planTarget } from "./target/index.js";
import type { Endpoint, Target } from "./target/types.js";
import type { ExitCodeValue } from "./util/errors.js";
import { packageInfo } from "./util/package-root.js";
import { createProgress } from "./util/progress.js";
import { createRng } from "./util/rng.js";

export interface PipelineFiles {
  results: string;
  records: string;
  reportMd: string;
  reportHtml?: string;
  serverLog?: string;
  extra: string[];
}

export interface PipelineOutcome {
  results: Results;
  outDir: string;
  files: PipelineFiles;
  reportMarkdown: string;
  exitCode: ExitCodeValue;
}

export interface PipelineHooks {
  /** Where progress lines and the console report go. Default: stderr. */
  log?: (line: string) => void;
  /** Called once the target is up (the Action records server PIDs for its post step; tests inject faults). */
  onTargetStarted?: (target: Target, endpoint: Endpoint) => void;
}

/** How often the run checks that the server it started is still alive. */
const WATCHDOG_MS = 250;

/**
 * The only place that sequences the stages: config -> target -> workload/measure -> analysis -> report.
 * Results are on disk as they are produced (records.ndjson per request, results.json after every test), and the
 * target is stopped whatever happens.
 */
export async function runPipeline(config: RunConfig, hooks: PipelineHooks = {}): Promise<PipelineOutcome> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const loaded = loadSuite(config.suiteFile);
  const { suite } = loaded;
  // A broken baseline is bad input: say so before spending minutes measuring.
  const baseline = config.baselinePath ? await prepareBaseline(config.baselinePath) : undefined;
  const outDir = resolve(config.outDir);
  mkdirSync(outDir, { recursive: true });
  const files: PipelineFiles = {
    results: join(outDir, "results.json"),
    records: join(outDir, "records.ndjson"),
    reportMd: join(outDir, "report.md"),
    extra: [],
  };
  rmSync(files.records, { force: true });

  const plan = await planTarget(suite, config);
  if (plan.embeddedDefault) log(`tokengate: no model given: using the embedded synthetic tiny model (${plan.model})`);
  const startedAt = new Date().toISOString();
  const sink = new RecordSink(files.records);
  const target = createTarget(plan, suite, config);
  let results: Results;
  let comparison: Comparison | undefined;
  let rerunTarget: Target | undefined;
  try {
    log(`tokengate: starting the ${plan.kind} target${plan.model ? ` with ${plan.model}` : ""}`);
    const endpoint = await target.start();
    if (endpoint.logFile && existsSync(endpoint.logFile)) files.serverLog = endpoint.logFile;
    hooks.onTargetStarted?.(target, endpoint);
    // Experiments that restart servers per configuration (scaling) get a restarter with the run's own options.
    const restartTarget =
      plan.kind === "llama-server" ? llamaServerRestarter(llamaServerOptions(plan, suite, config)) : undefined;
    const session = new MeasureSession(target, endpoint, suite, sink, config, restartTarget);
    const environment = await environmentFingerprint(await target.fingerprint());
    const tests: TestResult[] = [];
    const snapshot = (): Results => ({
      schemaVersion: RESULTS_SCHEMA_VERSION,
      tool: { name: "tokengate", version: packageInfo().version },
      startedAt,
      finishedAt: new Date().toISOString(),
      suite: { name: suite.name, file: loaded.file, sha256: loaded.sha256 },
      environment,
      tests,
      verdict: { overall: "pass", checks: [], reason: "not judged yet (partial results)" },
    });
    try {
      await session.run(suite.tests, (result) => {
        tests.push(result);
        writeJsonAtomic(files.results, snapshot());
      });
      results = snapshot();
      if (baseline) comparison = await resolveComparison(baseline, results);
      results.verdict = decideVerdict(results, suite, comparison);
      // A baseline comparison that fails is rerun once, in a fresh server process, before it is believed: runner
      // noise persists for a whole run (docs/verdicts.md), so the rerun is a second candidate run, not more trials.
      // Targets and crashes are not rerun: a rerun cannot make them untrue.
      const confirm = planConfirmation(results.verdict, policyFromBlock(suite.policy));
      if (confirm.needed && !session.stopped) {
        log(`tokengate: ${confirm.reason} (in a fresh ${plan.kind} process)`);
        await session.close();
        await target.stop();
        rerunTarget = createTarget(plan, suite, config);
        const rerunEndpoint = await rerunTarget.start();
        hooks.onTargetStarted?.(rerunTarget, rerunEndpoint);
        const rerunSession = new MeasureSession(rerunTarget, rerunEndpoint, suite, sink, config, restartTarget);
        const rerun: TestResult[] = [];
        try {
          await rerunSession.run(
            suite.tests.filter((t) => confirm.tests.includes(testName(t))),
            (r) => rerun.push(r),
          );
        } finally {
          await rerunSession.close();
        }
        results.verdict = confirmVerdict(
          results,
          { ...results, tests: rerun },
          comparison,
          policyFromBlock(suite.policy),
        );
      }
    } finally {
      await session.close();
    }
  } finally {
    sink.close();
    await target.stop();
    await rerunTarget?.stop();
  }

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
  log(renderConsole(results));
  return { results, outDir, files, reportMarkdown, exitCode: results.verdict.overall === "fail" ? 1 : 0 };
}

/** Runs tests against a started target: one client, one RNG, a watchdog that stops the run if the server dies. */
class MeasureSession {
  private readonly client: StreamClient;
  private readonly stop = new AbortController();
  private readonly watchdog: NodeJS.Timeout;
  private readonly rng;
  private closed = false;

  constructor(
    private readonly target: Target,
    private readonly endpoint: Endpoint,
    private readonly suite: Suite,
    private readonly sink: RecordSink,
    private readonly config: RunConfig,
    private readonly restartTarget?: RestartTarget,
  ) {
    this.client = new StreamClient(endpoint, {
      stallTimeoutMs: suite.request.stallTimeoutMs,
      requestTimeoutMs: suite.request.requestTimeoutMs,
    });
    this.rng = createRng(suite.seed);
    this.watchdog = setInterval(() => {
      if (!target.alive()) this.stop.abort(new Error(`the ${target.kind} server exited during the run`));
    }, WATCHDOG_MS);
  }

  get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  async run(tests: SuiteTest[], onResult: (r: TestResult) => void): Promise<void> {
    for (const test of tests) {
      if (this.stopped) break;
      const name = testName(test);
      const trials = trialsFor(test, this.suite.trials, this.config.trials);
      const progress = createProgress({
        label: name,
        total: plannedRequests(test, trials) ?? 0,
        unit: "req",
        quiet: this.config.quiet ?? false,
      });
      const ctx: TestContext & { restartTarget?: RestartTarget } = {
        ...(this.restartTarget ? { restartTarget: this.restartTarget } : {}),
        testName: name,
        endpoint: this.endpoint,
        client: this.client,
        sink: this.sink,
        request: this.suite.request,
        rng: this.rng,
        signal: this.stop.signal,
        onRequestDone: (done) => progress.update(done),
        probeReset: probeResetFor(this.target.kind),
      };
      // llama-server /metrics counter deltas and /slots samples over the test (nothing for servers without them).
      // Not for `scaling`: it measures servers of its own, and the run's server sits idle meanwhile.
      await using sampler = test.kind === "scaling" ? undefined : await startServerSampler(this.endpoint);
      // How much of the machine other work took meanwhile (the verdict will not fail a run on a busy machine).
      // Not for `scaling` either: the servers it starts would count as other work.
      const machine =
        test.kind === "scaling" ? undefined : startMachineSampler(() => [process.pid, this.target.pid?.()]);
      const result = await runTest(ctx, test, trials);
      const server = await sampler?.stop();
      if (server) result.server = server;
      const load = machine?.stop();
      if (load) result.machine = load;
      progress.done(
        result.aborted ? `aborted: ${result.aborted}` : `${result.requests.succeeded}/${result.requests.attempted} ok`,
      );
      onResult(result);
    }
  }

  /** Idempotent: the confirmation rerun closes the first session before the run's finally does. */
  async close(): Promise<void> {
    clearInterval(this.watchdog);
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }
}
