import type { LatencyTest } from "../config/suite-schema.js";
import type { RequestRecord } from "../measure/record.js";
import type { TestResult } from "../measure/results.js";
import { makePrompt } from "../workload/prompts.js";
import { assembleTest } from "./assemble.js";
import { apiFor, sendAndRecord, type TestContext } from "./context.js";

/**
 * The seed's Task 1.1 done properly: single requests (one in flight) at several prompt lengths, `warmup` unmeasured
 * requests then `repetitions` measured ones per length, repeated for each trial. Per length the report shows mean,
 * p50, p95, stddev and coefficient of variation of TTFT, total time, tokens and tokens/s ("measure variance").
 */
export async function runLatencyTest(ctx: TestContext, test: LatencyTest, trials: number): Promise<TestResult> {
  const api = apiFor(ctx, test.api);
  const records: RequestRecord[] = [];
  const perTrial = test.promptTokens.length * (test.warmup + test.repetitions);
  const total = trials * perTrial;
  let done = 0;
  outer: for (let trial = 0; trial < trials; trial++) {
    for (const len of test.promptTokens) {
      for (let i = 0; i < test.warmup + test.repetitions; i++) {
        if (ctx.signal.aborted) break outer;
        const rec = await sendAndRecord(ctx, {
          scenario: `prompt_${len}`,
          trial,
          measured: i >= test.warmup,
          prompt: makePrompt(len, ctx.rng),
          api,
          ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
        });
        records.push(rec);
        ctx.onRequestDone?.(++done, total);
      }
    }
  }
  return assembleTest({
    name: ctx.testName,
    kind: "latency",
    params: {
      promptTokens: test.promptTokens,
      repetitions: test.repetitions,
      warmup: test.warmup,
      api,
      maxTokens: test.maxTokens ?? ctx.request.maxTokens,
    },
    records,
    trials,
    scenarios: test.promptTokens.map((len) => ({ name: `prompt_${len}`, params: { promptTokens: len } })),
    ...(ctx.signal.aborted ? { aborted: String(ctx.signal.reason ?? "aborted") } : {}),
  });
}
