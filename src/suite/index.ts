import type { SuiteTest } from "../config/suite-schema.js";
import type { TestResult } from "../measure/results.js";
import type { TestContext } from "./context.js";
import { runLatencyTest } from "./latency.js";
import { runThroughputTest } from "./throughput.js";

/** Test name as it appears in results and reports. */
export function testName(test: SuiteTest): string {
  return test.name ?? test.kind;
}

/** How many requests a test will send (for progress displays). */
export function plannedRequests(test: SuiteTest, trials: number): number | undefined {
  switch (test.kind) {
    case "latency":
      return trials * test.promptTokens.length * (test.warmup + test.repetitions);
    case "throughput":
      return trials * (test.warmup + test.requests);
    default:
      return undefined;
  }
}

/** Dispatches a suite test to its runner. */
export function runTest(ctx: TestContext, test: SuiteTest, trials: number): Promise<TestResult> {
  switch (test.kind) {
    case "latency":
      return runLatencyTest(ctx, test, trials);
    case "throughput":
      return runThroughputTest(ctx, test, trials);
  }
}
