import type { OpenLoopTest } from "../config/suite-schema.js";
import type { RequestRecord } from "../measure/record.js";
import type { TestResult } from "../measure/results.js";
import { mergeSelfChecks, type SelfCheckResult } from "../measure/self-check.js";
import { assembleTest } from "./assemble.js";
import type { TestContext } from "./context.js";
import {
  driveOpen,
  evaluateSlo,
  goodputMetric,
  goodputRps,
  inFlightStats,
  progressCounter,
  resolveTasks,
  type SaturationSignal,
  type ScheduleDigest,
  scenariosByTask,
  scheduleDigest,
  withinStepSaturation,
} from "./load-common.js";

/**
 * A fixed-rate open loop: arrivals on a constant, Poisson or gamma schedule for `durationS` (and/or `requests`), with
 * an optional concurrency cap. Besides the usual metrics it reports the schedule (requested vs achieved rate, lag
 * p50/p99, late, dropped and never-sent arrivals) and the latencies corrected for coordinated omission
 * (`ttft_corrected_ms`, `e2e_corrected_ms`: from the intended start) next to the raw ones.
 */
export async function runOpenLoopTest(ctx: TestContext, test: OpenLoopTest, trials: number): Promise<TestResult> {
  const { tasks, fallbacks } = resolveTasks(ctx, test.tasks, {
    ...(test.api ? { api: test.api } : {}),
    promptTokens: test.promptTokens,
    ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
  });
  const onRecord = progressCounter(ctx);
  const measured: RequestRecord[] = [];
  const windowsNs: number[] = [];
  const checks: SelfCheckResult[] = [];
  const runs: Array<{
    trial: number;
    stoppedBy: string;
    drain: unknown;
    schedule: ScheduleDigest;
    inFlight: { mean: number; max: number };
    saturation: SaturationSignal;
  }> = [];
  const scenario = tasks.length === 1 ? `rate_${Number(test.rate.toPrecision(4))}` : undefined;
  for (let trial = 0; trial < trials && !ctx.signal.aborted; trial++) {
    const { outcome, selfCheck } = await driveOpen(ctx, {
      pattern: test.arrivals,
      ratePerS: test.rate,
      ...(test.burstiness === undefined ? {} : { burstiness: test.burstiness }),
      ...(test.cv === undefined ? {} : { cv: test.cv }),
      tasks,
      durationMs: test.durationS * 1000,
      ...(test.requests === undefined ? {} : { requests: test.requests }),
      warmupMs: test.warmupS * 1000,
      ...(test.warmupRequests === undefined ? {} : { warmupRequests: test.warmupRequests }),
      ...(test.maxConcurrency === undefined ? {} : { maxConcurrency: test.maxConcurrency }),
      whenFull: test.whenFull,
      drainTimeoutMs: test.drainTimeoutS * 1000,
      spinNs: test.spinUs * 1000,
      trial,
      ...(scenario ? { scenario } : {}),
      onRecord,
    });
    const m = outcome.records.filter((r) => r.measured);
    measured.push(...m);
    windowsNs.push(outcome.windowNs);
    checks.push(selfCheck);
    runs.push({
      trial,
      stoppedBy: outcome.stoppedBy,
      drain: outcome.drain,
      schedule: scheduleDigest(outcome, m, test.lateMs),
      inFlight: inFlightStats(m, outcome.measureStartNs, outcome.measureEndNs),
      saturation: withinStepSaturation(m),
    });
  }
  const result = assembleTest({
    name: ctx.testName,
    kind: "open-loop",
    params: {
      rate: test.rate,
      arrivals: test.arrivals,
      ...(test.burstiness === undefined ? {} : { burstiness: test.burstiness }),
      ...(test.cv === undefined ? {} : { cv: test.cv }),
      durationS: test.durationS,
      ...(test.requests === undefined ? {} : { requests: test.requests }),
      warmupS: test.warmupS,
      ...(test.maxConcurrency === undefined ? {} : { maxConcurrency: test.maxConcurrency }),
      whenFull: test.whenFull,
      lateMs: test.lateMs,
      drainTimeoutS: test.drainTimeoutS,
      tasks: tasks.map((t) => ({ ...t })),
      ...(fallbacks.length ? { apiFallbacks: fallbacks } : {}),
      ...(test.slo ? { slo: test.slo } : {}),
    },
    records: measured,
    trials,
    windowsNs,
    ...(ctx.signal.aborted ? { aborted: String(ctx.signal.reason ?? "aborted") } : {}),
  });
  // One task: the headline metrics are the scenario (not repeated). Several: one scenario per task.
  if (!scenario) result.scenarios = scenariosByTask(tasks, measured, windowsNs, test.slo);
  if (test.slo && windowsNs.length) {
    result.metrics.goodput_rps = goodputMetric(
      windowsNs.map((w, t) =>
        goodputRps(
          measured.filter((r) => r.trial === t),
          test.slo!,
          w,
        ),
      ),
    );
  }
  const notSent = runs.reduce((s, r) => s + r.schedule.dropped + r.schedule.unsent, 0);
  const selfCheck = mergeSelfChecks(checks);
  result.extra = {
    runs,
    ...(test.slo ? { slo: evaluateSlo(measured, test.slo, notSent) } : {}),
    ...(selfCheck ? { selfCheck } : {}),
  };
  return result;
}
