import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, loadEngine } from "../../src/target/in-process/engine.js";
import { SAMPLING_DEFAULTS, type SamplingParams } from "../../src/target/in-process/openai.js";
import { resolveServerConfig } from "../../src/target/in-process/options.js";
import type { GenerationJob } from "../../src/target/in-process/scheduler.js";
import { tinyModel } from "../helpers/models.js";

/**
 * The engine on its own (in this process, no HTTP): node-llama-cpp behaviour the server depends on, where an HTTP
 * test would only see it through timing.
 */
let engine: Engine;

const params = (over: Partial<SamplingParams> = {}): SamplingParams => ({
  ...SAMPLING_DEFAULTS,
  maxTokens: 8,
  ignoreEos: true,
  seed: undefined,
  logitBias: [],
  stop: [],
  ...over,
});

function job(prompt: string, over: Partial<SamplingParams> = {}): GenerationJob {
  return { promptTokens: engine.tokenize({ kind: "text", text: prompt }), params: params(over), cachePrompt: true };
}

beforeAll(async () => {
  const config = resolveServerConfig({ modelPath: await tinyModel(), threads: 1, sequences: 3, contextSize: 2048 });
  engine = await loadEngine(config, { log: () => {} });
});
afterAll(async () => {
  await engine?.dispose();
});

describe("in-process engine (real node-llama-cpp)", () => {
  it("generates exactly max_tokens with ignore_eos and reuses a common prompt prefix", async () => {
    const signal = new AbortController().signal;
    const [seq] = engine.sequences;
    const pieces: string[] = [];
    const first = await engine.execute(
      seq!,
      job("The cat sat on the mat", { maxTokens: 16 }),
      { onText: (t) => pieces.push(t) },
      signal,
    );
    expect(first.completionTokens).toBe(16);
    expect(first.finishReason).toBe("length");
    expect(first.cachedTokens).toBe(0);
    expect(pieces.join("")).toBe(first.text);
    expect(first.timings.predicted_n).toBe(16);

    const again = await engine.execute(seq!, job("The cat sat on the mat and"), { onText: () => {} }, signal);
    expect(again.cachedTokens).toBe(first.promptTokens);
    expect(again.timings.prompt_n).toBe(again.promptTokens - first.promptTokens);
  });

  it("clears a used sequence for a new request while two generations keep decoding", async () => {
    const signal = new AbortController().signal;
    const [a, b, c] = engine.sequences as [never, never, never];
    // Every sequence has been used: the new request below has to clear one.
    await Promise.all([a, b, c].map((s, i) => engine.execute(s, job(`warm ${i}`), { onText: () => {} }, signal)));

    const stopLong = new AbortController();
    let produced = 0;
    let started!: () => void;
    const bothStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    const longs = [a, b].map((s, i) =>
      engine
        .execute(
          s,
          job(`Go on ${i}`, { maxTokens: 1_000_000, temperature: 0.8 }),
          {
            onText: () => {
              if (++produced >= 20) started();
            },
          },
          stopLong.signal,
        )
        .catch((e: unknown) => e),
    );
    await bothStarted;
    // node-llama-cpp 3.21.1 keeps its context lock while decodes stay queued, and with two generations running one
    // always is: without the engine's admission barrier this request waited until a long generation had to shift its
    // context (about 2000 tokens each, here). Counted in tokens, not time: the long ones share every batch with it.
    const producedBefore = produced;
    const short = await engine.execute(c, job("meanwhile"), { onText: () => {} }, signal);
    const producedMeanwhile = produced - producedBefore;
    expect(short.completionTokens).toBe(8);
    expect(producedMeanwhile).toBeLessThan(200);
    stopLong.abort(new Error("done"));
    const ended = await Promise.all(longs);
    expect(ended.every((e) => e instanceof Error && e.message === "done")).toBe(true);
  });
});
