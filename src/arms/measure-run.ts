/**
 * The one server lifecycle: start a freshly started server for one configuration, run tests against it, stop it.
 * `tokengate run` (a run and its confirmation rerun), `tokengate ab` (each arm's runs, interleaved) and anything else
 * that measures a configuration go through measureRun, so every run is measured the same way: one client, one RNG
 * seeded by the suite, a watchdog on the server, server and machine samplers per test, results written per test.
 */
import { existsSync } from "node:fs";
import { policyFromBlock, resolvePolicy } from "../analysis/policy.js";
import { StreamClient } from "../client/stream-client.js";
import type { RunConfig } from "../config/run-config.js";
import type { LoadedSuite } from "../config/suite-loader.js";
import type { Suite, SuiteTest } from "../config/suite-schema.js";
import { environmentFingerprint } from "../measure/environment.js";
import { ownProcesses, startMachineSampler } from "../measure/machine-load.js";
import type { RecordSink } from "../measure/record-sink.js";
import { RESULTS_SCHEMA_VERSION, type Results, type TestResult } from "../measure/results.js";
import { startServerSampler } from "../measure/server-metrics.js";
import type { TestContext } from "../suite/context.js";
import { plannedRequests, runTest, testName, trialsFor } from "../suite/index.js";
import { probeResetFor } from "../suite/probe-reset.js";
import { llamaServerRestarter, type RestartTarget } from "../suite/scaling.js";
import { probeLlamaHealth } from "../target/health.js";
import { createTarget, llamaServerOptions, type TargetPlan } from "../target/index.js";
import type { Endpoint, Target } from "../target/types.js";
import { packageInfo } from "../util/package-root.js";
import { createProgress } from "../util/progress.js";
import { createRng } from "../util/rng.js";

/** How often a run checks that the server it started is still alive. */
const WATCHDOG_MS = 250;

export interface MeasureRunInput {
  loaded: LoadedSuite;
  plan: TargetPlan;
  /** outDir (server logs), trials, quiet, and the target options of this configuration. */
  config: RunConfig;
  sink: RecordSink;
  /** Only these tests (the confirmation rerun); default every test of the suite. */
  tests?: SuiteTest[];
  /** For progress lines: `arm B run 2`. */
  label?: string;
  log: (line: string) => void;
  /** Ends the run between and inside tests (an interrupt); what was measured is returned. */
  signal?: AbortSignal;
  /** After every test, with the results so far (callers write them to disk). */
  onProgress?: (partial: Results) => void;
  /** Called once the server is up (the Action records its PID for the post step; tests inject faults). */
  onTargetStarted?: (target: Target, endpoint: Endpoint) => void;
}

export interface MeasuredRun {
  results: Results;
  /** Set when the run ended before its last test: the server died or the signal fired. */
  stopped?: string;
  /** The server's own log, when it wrote one. */
  serverLog?: string;
}

/**
 * Starts the configuration's server, measures the tests, and stops the server whatever happens. The results'
 * verdict is a placeholder ("not judged yet"): judging is the caller's (it knows what to compare with).
 */
export async function measureRun(input: MeasureRunInput): Promise<MeasuredRun> {
  const { loaded, plan, config, log } = input;
  const { suite } = loaded;
  const startedAt = new Date().toISOString();
  const target = createTarget(plan, suite, config);
  const tests: TestResult[] = [];
  try {
    log(
      `tokengate: starting the ${plan.kind} target${plan.model ? ` with ${plan.model}` : ""}${input.label ? ` (${input.label})` : ""}`,
    );
    const endpoint = await target.start(input.signal);
    input.onTargetStarted?.(target, endpoint);
    // Experiments that restart servers per configuration (scaling) get a restarter with this run's own options.
    const restartTarget =
      plan.kind === "llama-server" ? llamaServerRestarter(llamaServerOptions(plan, suite, config)) : undefined;
    const environment = await environmentFingerprint(await target.fingerprint());
    const snapshot = (): Results => ({
      schemaVersion: RESULTS_SCHEMA_VERSION,
      tool: { name: "tokengate", version: packageInfo().version },
      startedAt,
      finishedAt: new Date().toISOString(),
      suite: { name: suite.name, file: loaded.file, sha256: loaded.sha256 },
      environment,
      tests: [...tests],
      verdict: { overall: "pass", checks: [], reason: "not judged yet (partial results)" },
    });
    const session = new MeasureSession(target, endpoint, suite, input.sink, config, restartTarget, input.signal);
    try {
      await session.run(input.tests ?? suite.tests, (result) => {
        tests.push(result);
        input.onProgress?.(snapshot());
      });
    } finally {
      await session.close();
    }
    const out: MeasuredRun = { results: snapshot() };
    if (session.stopReason) out.stopped = session.stopReason;
    if (endpoint.logFile && existsSync(endpoint.logFile)) out.serverLog = endpoint.logFile;
    return out;
  } finally {
    await target.stop();
  }
}

/** Runs tests against a started target: one client, one RNG, a watchdog that stops the run if the server dies. */
class MeasureSession {
  private readonly client: StreamClient;
  private readonly stop = new AbortController();
  private readonly watchdog: NodeJS.Timeout;
  private readonly rng;
  private readonly unlink: () => void;
  private readonly stallMs: number;
  private probing = false;
  private closed = false;

  constructor(
    private readonly target: Target,
    private readonly endpoint: Endpoint,
    private readonly suite: Suite,
    private readonly sink: RecordSink,
    private readonly config: RunConfig,
    private readonly restartTarget?: RestartTarget,
    outer?: AbortSignal,
  ) {
    this.client = new StreamClient(endpoint, {
      stallTimeoutMs: suite.request.stallTimeoutMs,
      requestTimeoutMs: suite.request.requestTimeoutMs,
    });
    this.rng = createRng(suite.seed);
    this.stallMs = resolvePolicy(policyFromBlock(suite.policy)).stallWindowS * 1000;
    this.watchdog = setInterval(() => {
      if (this.stopped) return;
      if (!target.alive()) {
        this.stop.abort(`the ${target.kind} server exited during the run`);
        return;
      }
      const act = this.client.activity();
      if (act.inFlight > 0 && act.idleMs > this.stallMs && !this.probing) void this.stalled(act);
    }, WATCHDOG_MS);
    const onOuter = () => this.stop.abort(outer?.reason);
    if (outer?.aborted) onOuter();
    else outer?.addEventListener("abort", onOuter, { once: true });
    this.unlink = () => outer?.removeEventListener("abort", onOuter);
  }

  get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  /**
   * No byte from the server and no request done for the stall window while requests wait (a process stopped with
   * SIGSTOP, a server wedged in a driver call): probe it once, then end the run with that reason. The tests in flight
   * end as aborted with what they measured; the rest are skipped. Bound: the window, one probe (2 s), the stop.
   */
  private async stalled(act: { inFlight: number; idleMs: number }): Promise<void> {
    this.probing = true;
    const probe = await probeLlamaHealth(this.endpoint.baseUrl, { timeoutMs: 2000 }).catch(() => undefined);
    if (this.stopped) return;
    this.stop.abort(
      `server stalled: no byte and no finished request for ${(act.idleMs / 1000).toFixed(0)} s with ${act.inFlight} request${act.inFlight === 1 ? "" : "s"} in flight (stall window ${this.stallMs / 1000} s, policy.stallWindowS); a /health probe then got ${probe ? probe.detail : "no answer"}`,
    );
  }

  /** Why the run stopped early, in words; undefined while it has not. */
  get stopReason(): string | undefined {
    if (!this.stopped) return undefined;
    const r: unknown = this.stop.signal.reason;
    return r instanceof Error ? r.message : String(r);
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
      const machine = test.kind === "scaling" ? undefined : startMachineSampler(ownProcesses(this.target));
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

  /** Idempotent. */
  async close(): Promise<void> {
    clearInterval(this.watchdog);
    this.unlink();
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }
}
