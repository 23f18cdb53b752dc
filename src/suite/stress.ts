import type { StressTest } from "../config/suite-schema.js";
import type { RequestRecord } from "../measure/record.js";
import type { TestResult } from "../measure/results.js";
import { mergeSelfChecks, type SelfCheckResult } from "../measure/self-check.js";
import { thinkTimeOf } from "../workload/schedulers/tasks.js";
import type { LoopOutcome } from "../workload/schedulers/types.js";
import { assembleTest } from "./assemble.js";
import type { TestContext } from "./context.js";
import {
  driveClosed,
  evaluateSlo,
  goodputMetric,
  goodputRps,
  progressCounter,
  resolveTasks,
  scenariosByTask,
} from "./load-common.js";

/**
 * The seed's Task 2.2 (stress testing with locust) as a tokengate test: `users` virtual users started at `spawnRate`
 * per second, each picking weighted tasks (default: the seed's locustfile, `completion` x1 and `chat` x3 with
 * "Hello world" / "Hi" and 20 tokens) and thinking `between(1, 3)` seconds after each, for `durationS`. Results per
 * task (scenarios) and overall, like locust's per-endpoint table; the client self-check says whether tokengate kept up.
 */
export async function runStressTest(ctx: TestContext, test: StressTest, trials: number): Promise<TestResult> {
  const { tasks, fallbacks } = resolveTasks(ctx, test.tasks, {
    ...(test.api ? { api: test.api } : {}),
    promptTokens: test.promptTokens,
    ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
  });
  const onRecord = progressCounter(ctx);
  const measured: RequestRecord[] = [];
  const windowsNs: number[] = [];
  const runs: Array<Pick<LoopOutcome, "stoppedBy" | "drain" | "maxInFlight" | "windowNs"> & { trial: number }> = [];
  const checks: SelfCheckResult[] = [];
  for (let trial = 0; trial < trials && !ctx.signal.aborted; trial++) {
    const { outcome, selfCheck } = await driveClosed(ctx, {
      users: test.users,
      tasks,
      thinkTime: thinkTimeOf(test.thinkTimeS),
      ...(test.spawnRate === undefined ? {} : { spawnRatePerS: test.spawnRate }),
      ...(test.iterations === undefined ? {} : { iterations: test.iterations }),
      durationMs: test.durationS * 1000,
      warmupMs: test.warmupS * 1000,
      drainTimeoutMs: test.drainTimeoutS * 1000,
      trial,
      onRecord,
    });
    measured.push(...outcome.records.filter((r) => r.measured));
    windowsNs.push(outcome.windowNs);
    checks.push(selfCheck);
    runs.push({
      trial,
      stoppedBy: outcome.stoppedBy,
      drain: outcome.drain,
      maxInFlight: outcome.maxInFlight,
      windowNs: outcome.windowNs,
    });
  }
  const result = assembleTest({
    name: ctx.testName,
    kind: "stress",
    params: {
      users: test.users,
      ...(test.spawnRate === undefined ? {} : { spawnRate: test.spawnRate }),
      durationS: test.durationS,
      warmupS: test.warmupS,
      ...(test.iterations === undefined ? {} : { iterations: test.iterations }),
      thinkTimeS: test.thinkTimeS,
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
  result.scenarios = scenariosByTask(tasks, measured, windowsNs, test.slo);
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
  const selfCheck = mergeSelfChecks(checks);
  result.extra = {
    runs,
    ...(test.slo ? { slo: evaluateSlo(measured, test.slo) } : {}),
    ...(selfCheck ? { selfCheck } : {}),
  };
  return result;
}
