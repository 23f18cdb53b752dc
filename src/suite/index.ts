import { DEFAULT_POLICY } from "../analysis/policy.js";
import type { SuiteTest } from "../config/suite-schema.js";
import type { TestResult } from "../measure/results.js";
import type { TestContext } from "./context.js";
import { runLatencyTest } from "./latency.js";
import { runMaxLoadTest } from "./max-load.js";
import { runOpenLoopTest } from "./open-loop.js";
import { runRampTest } from "./ramp.js";
import { runScalingTest, type ScalingContext } from "./scaling.js";
import { runStressTest } from "./stress.js";
import { runThroughputTest } from "./throughput.js";

/** Test name as it appears in results and reports. */
export function testName(test: SuiteTest): string {
  return test.name ?? test.kind;
}

/**
 * Trials when neither the run (--trials), the test nor the suite says: enough for a baseline comparison (the
 * policy's default minTrials) for the kinds that are gated against a baseline; one for the time-bound load and
 * scaling kinds, which repeat steps and configurations inside a trial and would take minutes more per trial.
 */
export const DEFAULT_TRIALS: Readonly<Record<SuiteTest["kind"], number>> = {
  latency: DEFAULT_POLICY.minTrials,
  throughput: DEFAULT_POLICY.minTrials,
  ramp: 1,
  "max-load": 1,
  stress: 1,
  "open-loop": 1,
  scaling: 1,
};

/** The trial count of a test: the run's override, the test's, the suite's, else DEFAULT_TRIALS by kind. */
export function trialsFor(test: SuiteTest, suiteTrials: number | undefined, override?: number): number {
  return override ?? test.trials ?? suiteTrials ?? DEFAULT_TRIALS[test.kind];
}

/** How many requests a test will send (for progress displays). */
export function plannedRequests(test: SuiteTest, trials: number): number | undefined {
  switch (test.kind) {
    case "latency":
      return trials * test.promptTokens.length * (test.warmup + test.repetitions);
    case "throughput":
      return trials * (test.warmup + test.requests);
    case "open-loop": {
      // Arrivals of the schedule (warm-up included); a cap that drops or a count bound makes it fewer.
      const byTime = Math.round(test.rate * (test.durationS + test.warmupS));
      const byCount = test.requests === undefined ? byTime : test.requests + (test.warmupRequests ?? 0);
      return trials * Math.min(byTime, byCount);
    }
    case "scaling":
      // How many configurations run depends on the GPUs present (the test reports its own total as it goes).
      return undefined;
    default:
      // ramp, max-load, stress: time-bound closed loops; how many requests fit depends on the server.
      return undefined;
  }
}

/**
 * Dispatches a suite test to its runner. `scaling` also reads `restartTarget` (and optionally `gpuInventory`) from
 * the context: give them where the target is a llama-server (src/suite/scaling.ts, ScalingContext).
 */
export function runTest(ctx: TestContext | ScalingContext, test: SuiteTest, trials: number): Promise<TestResult> {
  switch (test.kind) {
    case "latency":
      return runLatencyTest(ctx, test, trials);
    case "throughput":
      return runThroughputTest(ctx, test, trials);
    case "ramp":
      return runRampTest(ctx, test, trials);
    case "max-load":
      return runMaxLoadTest(ctx, test, trials);
    case "stress":
      return runStressTest(ctx, test, trials);
    case "open-loop":
      return runOpenLoopTest(ctx, test, trials);
    case "scaling":
      return runScalingTest(ctx, test, trials);
  }
}
