import type { ThroughputTest } from "../config/suite-schema.js";
import type { RequestRecord } from "../measure/record.js";
import type { TestResult } from "../measure/results.js";
import { makePrompt } from "../workload/prompts.js";
import { assembleTest } from "./assemble.js";
import { apiFor, runPool, sendAndRecord, type TestContext } from "./context.js";

/**
 * The seed's Task 1.2: `requests` requests with `concurrency` in flight. Reported as completed requests over the
 * measured window (first measured start -> last measured end), not the seed's n / max latency, which overstates
 * throughput when requests queue. Warm-up requests run first at the same concurrency and are not measured.
 */
export async function runThroughputTest(ctx: TestContext, test: ThroughputTest, trials: number): Promise<TestResult> {
  const api = apiFor(ctx, test.api);
  const records: RequestRecord[] = [];
  const total = trials * (test.warmup + test.requests);
  let done = 0;
  const send = (trial: number, measured: boolean) => async () => {
    const rec = await sendAndRecord(ctx, {
      scenario: `concurrency_${test.concurrency}`,
      trial,
      measured,
      prompt: makePrompt(test.promptTokens, ctx.rng),
      api,
      ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
    });
    records.push(rec);
    ctx.onRequestDone?.(++done, total);
  };
  for (let trial = 0; trial < trials && !ctx.signal.aborted; trial++) {
    if (test.warmup > 0) await runPool(test.warmup, test.concurrency, send(trial, false), ctx.signal);
    await runPool(test.requests, test.concurrency, send(trial, true), ctx.signal);
  }
  return assembleTest({
    name: ctx.testName,
    kind: "throughput",
    params: {
      concurrency: test.concurrency,
      requests: test.requests,
      promptTokens: test.promptTokens,
      warmup: test.warmup,
      api,
      maxTokens: test.maxTokens ?? ctx.request.maxTokens,
    },
    records,
    trials,
    scenarios: [{ name: `concurrency_${test.concurrency}`, params: { concurrency: test.concurrency } }],
    ...(ctx.signal.aborted ? { aborted: String(ctx.signal.reason ?? "aborted") } : {}),
  });
}
