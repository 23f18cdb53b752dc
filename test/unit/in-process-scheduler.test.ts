import { afterEach, describe, expect, it, vi } from "vitest";
import type { SamplingParams } from "../../src/target/in-process/openai.js";
import {
  BatchGate,
  CachingScheduler,
  type GenerationJob,
  type GenerationResult,
  ResponseCache,
  responseCacheKey,
  SequencePool,
  SequenceScheduler,
} from "../../src/target/in-process/scheduler.js";
import { type Detokenize, partialStopSuffix, TextAssembler } from "../../src/target/in-process/text-stream.js";

const params: SamplingParams = {
  maxTokens: 4,
  ignoreEos: true,
  temperature: 0,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  seed: undefined,
  logitBias: [[3, Number.NEGATIVE_INFINITY]],
  stop: [],
};
const job = (over: Partial<SamplingParams> = {}, prompt = [1, 2, 3]): GenerationJob => ({
  promptTokens: prompt,
  params: { ...params, ...over },
  cachePrompt: true,
});

describe("SequencePool", () => {
  it("hands out free items, then queues first come first served", async () => {
    const pool = new SequencePool(["a", "b"]);
    const signal = new AbortController().signal;
    expect(await pool.acquire(signal)).toBe("a");
    expect(await pool.acquire(signal)).toBe("b");
    const order: string[] = [];
    const w1 = pool.acquire(signal).then((s) => order.push(`1:${s}`));
    const w2 = pool.acquire(signal).then((s) => order.push(`2:${s}`));
    expect(pool.queued).toBe(2);
    pool.release("b");
    pool.release("a");
    await Promise.all([w1, w2]);
    expect(order).toEqual(["1:b", "2:a"]);
    expect(pool.active).toBe(2);
  });

  it("prefers the free item with the best score", async () => {
    const pool = new SequencePool(["cold", "warm", "cool"]);
    const s = await pool.acquire(new AbortController().signal, (x) => (x === "warm" ? 10 : x === "cool" ? 1 : 0));
    expect(s).toBe("warm");
  });

  it("an aborted waiter leaves the queue and does not take a released item", async () => {
    const pool = new SequencePool(["a"]);
    const ac = new AbortController();
    await pool.acquire(new AbortController().signal);
    const waiting = pool.acquire(ac.signal);
    ac.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    expect(pool.queued).toBe(0);
    pool.release("a");
    expect(pool.active).toBe(0);
  });
});

describe("BatchGate (the seed's max_batch_size / max_wait_ms)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("dispatches on the next turn when only running generations are queued", () => {
    vi.useFakeTimers();
    const gate = new BatchGate({ maxBatchSize: 8, maxWaitMs: 1000 }, 4, () => 2);
    const dispatch = vi.fn();
    gate.schedule(dispatch);
    expect(dispatch).not.toHaveBeenCalled();
    vi.advanceTimersToNextTimer();
    expect(dispatch).toHaveBeenCalledTimes(1);
  });

  it("holds a batch with a new prompt until the wait is over", () => {
    vi.useFakeTimers();
    const gate = new BatchGate({ maxBatchSize: 8, maxWaitMs: 100 }, 4, () => 1);
    gate.promptQueued();
    const dispatch = vi.fn();
    gate.schedule(dispatch);
    vi.advanceTimersByTime(99);
    expect(dispatch).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(dispatch).toHaveBeenCalledTimes(1);
  });

  it("dispatches as soon as the batch is full: max_batch_size, capped by the sequences that can take a prompt", () => {
    vi.useFakeTimers();
    let active = 0;
    const gate = new BatchGate({ maxBatchSize: 3, maxWaitMs: 10_000 }, 4, () => active);
    const dispatch = vi.fn();
    active = 1;
    gate.promptQueued();
    gate.schedule(dispatch);
    expect(gate.batchTarget()).toBe(3);
    active = 2;
    gate.promptQueued();
    vi.advanceTimersByTime(50);
    expect(dispatch).not.toHaveBeenCalled();
    active = 3;
    gate.promptQueued();
    vi.advanceTimersToNextTimer();
    expect(dispatch).toHaveBeenCalledTimes(1);

    // Three sequences now decode; only one can take a new prompt, so one prompt fills the batch.
    const next = vi.fn();
    active = 4;
    gate.promptQueued();
    gate.schedule(next);
    expect(gate.batchTarget()).toBe(1);
    vi.advanceTimersToNextTimer();
    expect(next).toHaveBeenCalledTimes(1);
  });

  it("a rescheduled batch drops the previous timer", () => {
    vi.useFakeTimers();
    const gate = new BatchGate({ maxBatchSize: 8, maxWaitMs: 100 }, 4, () => 1);
    const first = vi.fn();
    const second = vi.fn();
    gate.promptQueued();
    gate.schedule(first);
    gate.schedule(second);
    vi.advanceTimersByTime(200);
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledTimes(1);
  });
});

describe("response cache", () => {
  it("keys only temperature-0 requests, on prompt and output-shaping parameters", () => {
    expect(responseCacheKey(job({ temperature: 0.8 }))).toBeUndefined();
    const k = responseCacheKey(job());
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(responseCacheKey(job())).toBe(k);
    expect(responseCacheKey({ ...job(), cachePrompt: false })).toBe(k);
    expect(responseCacheKey(job({ seed: 7 }))).toBe(k);
    expect(responseCacheKey(job({ maxTokens: 5 }))).not.toBe(k);
    expect(responseCacheKey(job({ stop: ["x"] }))).not.toBe(k);
    expect(responseCacheKey(job({ logitBias: [] }))).not.toBe(k);
    expect(responseCacheKey(job({}, [1, 2, 4]))).not.toBe(k);
  });

  it("evicts the least recently used entry", () => {
    const cache = new ResponseCache(2);
    const e = { pieces: ["x"], finishReason: "length" as const, promptTokens: 1, completionTokens: 1 };
    cache.set("a", e);
    cache.set("b", e);
    cache.get("a");
    cache.set("c", e);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBeDefined();
    expect(cache.size).toBe(2);
  });

  it("replays a stored answer piece by piece without running the generation again", async () => {
    let runs = 0;
    const base = new SequenceScheduler(new SequencePool([0]), async (_seq, j, sink): Promise<GenerationResult> => {
      runs++;
      for (const piece of ["he", "llo"]) sink.onText(piece);
      return {
        text: "hello",
        finishReason: "length",
        promptTokens: j.promptTokens.length,
        completionTokens: 4,
        cachedTokens: 0,
        timings: {} as GenerationResult["timings"],
        fromCache: false,
      };
    });
    const scheduler = new CachingScheduler(base, new ResponseCache(10));
    const signal = new AbortController().signal;
    const seen: string[] = [];
    await scheduler.run(job(), { onText: (t) => seen.push(t) }, signal);
    const again = await scheduler.run(job(), { onText: (t) => seen.push(t) }, signal);
    expect(runs).toBe(1);
    expect(seen).toEqual(["he", "llo", "he", "llo"]);
    expect(again).toMatchObject({ fromCache: true, text: "hello", completionTokens: 4, cachedTokens: 3 });
    expect(again.timings).toMatchObject({ cache_n: 3, prompt_n: 0, predicted_n: 4 });
    await scheduler.run(job({ temperature: 1 }), { onText: () => {} }, signal);
    expect(runs).toBe(2);
    expect(scheduler.stats()).toMatchObject({ requests: 3, modelRuns: 2, cacheHits: 1, cacheMisses: 1 });
  });
});

describe("TextAssembler", () => {
  // A byte-level vocabulary: token n is byte n, decoded as UTF-8 like a detokenizer does (U+FFFD when incomplete).
  const bytes: Detokenize = (tokens) => new TextDecoder().decode(Uint8Array.from(tokens));
  const utf8 = (s: string) => [...new TextEncoder().encode(s)];

  function run(text: string, stop: string[] = []) {
    const a = new TextAssembler(bytes, stop);
    const pieces: string[] = [];
    let stopped = false;
    for (const t of utf8(text)) {
      const r = a.push(t);
      if (r.text) pieces.push(r.text);
      if (r.stopped) {
        stopped = true;
        break;
      }
    }
    const rest = a.flush();
    if (rest) pieces.push(rest);
    return { pieces, stopped, text: a.text };
  }

  it("holds a character split over several tokens until it is complete", () => {
    const r = run("a你b");
    expect(r.pieces).toEqual(["a", "你", "b"]);
    expect(r.pieces.join("")).not.toContain("\uFFFD");
  });

  it("cuts at a stop string and never sends a part of it", () => {
    const r = run("hello END world", ["END"]);
    expect(r.stopped).toBe(true);
    expect(r.text).toBe("hello ");
    expect(r.pieces.join("")).toBe("hello ");
  });

  it("releases held text that turned out not to be a stop string", () => {
    const r = run("an ENx", ["END"]);
    expect(r.stopped).toBe(false);
    expect(r.text).toBe("an ENx");
  });

  it("partialStopSuffix finds the longest stop-string start at the end", () => {
    expect(partialStopSuffix("abcEN", ["END", "NOPE"])).toBe(2);
    expect(partialStopSuffix("abc", ["END"])).toBe(0);
  });
});
