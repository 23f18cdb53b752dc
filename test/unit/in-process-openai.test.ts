import { describe, expect, it } from "vitest";
import {
  errorBody,
  finishChunk,
  fullResponse,
  makeTimings,
  makeUsage,
  parseRequest,
  RequestError,
  type ResponseMeta,
  roleChunk,
  SAMPLING_DEFAULTS,
  textChunk,
  usageChunk,
} from "../../src/target/in-process/openai.js";
import { defaultThreads, resolveServerConfig } from "../../src/target/in-process/options.js";
import { BadInputError } from "../../src/util/errors.js";

const limits = { vocabSize: 32000 };

function badRequest(api: "chat" | "completions", body: unknown): RequestError {
  try {
    parseRequest(api, body, limits);
  } catch (e) {
    expect(e).toBeInstanceOf(RequestError);
    return e as RequestError;
  }
  throw new Error("expected a RequestError");
}

describe("parseRequest", () => {
  it("fills llama-server's sampling defaults", () => {
    const r = parseRequest("completions", { prompt: "hi" }, limits);
    expect(r.prompt).toEqual({ kind: "text", text: "hi" });
    expect(r.params).toMatchObject({ ...SAMPLING_DEFAULTS, maxTokens: undefined, ignoreEos: false, seed: undefined });
    expect(r.stream).toBe(false);
    expect(r.includeUsage).toBe(false);
    expect(r.cachePrompt).toBe(true);
  });

  it("reads the fields a benchmark sends", () => {
    const r = parseRequest(
      "chat",
      {
        model: "anything",
        messages: [
          { role: "developer", content: "be brief" },
          {
            role: "user",
            content: [
              { type: "text", text: "a" },
              { type: "text", text: "b" },
            ],
          },
        ],
        max_tokens: 32,
        ignore_eos: true,
        temperature: 0,
        seed: 42,
        stream: true,
        stream_options: { include_usage: true },
        stop: "END",
        cache_prompt: false,
      },
      limits,
    );
    expect(r.prompt).toEqual({
      kind: "chat",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: "ab" },
      ],
    });
    expect(r.params).toMatchObject({ maxTokens: 32, ignoreEos: true, temperature: 0, seed: 42, stop: ["END"] });
    expect(r.stream).toBe(true);
    expect(r.includeUsage).toBe(true);
    expect(r.cachePrompt).toBe(false);
  });

  it("takes max_completion_tokens and n_predict as max_tokens, and treats a negative seed as random", () => {
    expect(parseRequest("completions", { prompt: "x", max_completion_tokens: 7 }, limits).params.maxTokens).toBe(7);
    expect(parseRequest("completions", { prompt: "x", n_predict: 9 }, limits).params.maxTokens).toBe(9);
    expect(parseRequest("completions", { prompt: "x", seed: -1 }, limits).params.seed).toBeUndefined();
  });

  it("accepts OpenAI's and llama-server's logit_bias forms; -100 and false ban", () => {
    const openai = parseRequest("completions", { prompt: "x", logit_bias: { "5": -100, "3": 2.5, "9": -1 } }, limits);
    expect(openai.params.logitBias).toEqual([
      [3, 2.5],
      [5, Number.NEGATIVE_INFINITY],
      [9, -1],
    ]);
    const llama = parseRequest(
      "completions",
      {
        prompt: "x",
        logit_bias: [
          [4, false],
          [8, 1],
        ],
      },
      limits,
    );
    expect(llama.params.logitBias).toEqual([
      [4, Number.NEGATIVE_INFINITY],
      [8, 1],
    ]);
  });

  it("accepts a prompt of token ids within the vocabulary", () => {
    expect(parseRequest("completions", { prompt: [1, 2, 3] }, limits).prompt).toEqual({
      kind: "tokens",
      tokens: [1, 2, 3],
    });
    expect(badRequest("completions", { prompt: [1, 32000] }).param).toBe("prompt");
  });

  it.each([
    ["not an object", "completions", [1, 2], undefined],
    ["no prompt", "completions", { max_tokens: 3 }, "prompt"],
    ["no messages", "chat", { prompt: "x" }, "messages"],
    ["empty messages", "chat", { messages: [] }, "messages"],
    ["a bad role", "chat", { messages: [{ role: "robot", content: "x" }] }, "messages"],
    ["non-text content", "chat", { messages: [{ role: "user", content: [{ type: "image_url" }] }] }, "messages"],
    ["max_tokens 0", "completions", { prompt: "x", max_tokens: 0 }, "max_tokens"],
    ["max_tokens not an integer", "completions", { prompt: "x", max_tokens: 2.5 }, "max_tokens"],
    ["a negative temperature", "completions", { prompt: "x", temperature: -1 }, "temperature"],
    ["a string temperature", "completions", { prompt: "x", temperature: "0" }, "temperature"],
    ["stream not a boolean", "completions", { prompt: "x", stream: "yes" }, "stream"],
    ["a token id outside the vocabulary", "completions", { prompt: "x", logit_bias: { "40000": -100 } }, "logit_bias"],
    ["a non-numeric bias", "completions", { prompt: "x", logit_bias: { "5": "never" } }, "logit_bias"],
    ["stop not strings", "completions", { prompt: "x", stop: [1] }, "stop"],
    ["n > 1", "completions", { prompt: "x", n: 2 }, "n"],
  ] as const)("rejects %s with 400", (_name, api, body, param) => {
    const e = badRequest(api, body);
    expect(e.status).toBe(400);
    expect(e.param).toBe(param);
    expect(e.message.length).toBeGreaterThan(5);
  });
});

describe("response shapes (as llama-server sends them)", () => {
  const chat: ResponseMeta = { api: "chat", id: "chatcmpl-1", created: 1, model: "m.gguf", systemFingerprint: "fp" };
  const cmpl: ResponseMeta = { ...chat, api: "completions", id: "cmpl-1" };
  const timings = makeTimings({ cacheN: 2, promptN: 10, promptMs: 5, predictedN: 4, predictedMs: 0 });

  it("chat chunks: role first, then content deltas, then finish_reason", () => {
    expect(roleChunk(chat)).toMatchObject({
      object: "chat.completion.chunk",
      choices: [{ index: 0, finish_reason: null, delta: { role: "assistant", content: null } }],
    });
    expect(textChunk(chat, "hi")).toMatchObject({ choices: [{ delta: { content: "hi" }, finish_reason: null }] });
    expect(finishChunk(chat, "length")).toMatchObject({ choices: [{ delta: {}, finish_reason: "length" }] });
  });

  it("completion chunks carry text and logprobs null", () => {
    expect(textChunk(cmpl, "hi")).toMatchObject({
      object: "text_completion",
      choices: [{ text: "hi", index: 0, logprobs: null, finish_reason: null }],
    });
  });

  it("the usage chunk has no choices and carries usage and timings", () => {
    const u = usageChunk(chat, makeUsage(10, 4, 2), timings);
    expect(u.choices).toEqual([]);
    expect(u.usage).toEqual({
      prompt_tokens: 10,
      completion_tokens: 4,
      total_tokens: 14,
      prompt_tokens_details: { cached_tokens: 2 },
    });
    expect(u.timings).toMatchObject({ cache_n: 2, prompt_n: 10, predicted_n: 4, prompt_per_second: 2000 });
  });

  it("rates of zero-length spans are 0, not Infinity (JSON has no Infinity)", () => {
    expect(timings.predicted_per_second).toBe(0);
    expect(JSON.parse(JSON.stringify(timings)).predicted_per_second).toBe(0);
  });

  it("non-streaming responses and error bodies", () => {
    expect(fullResponse(chat, "abc", "stop", makeUsage(1, 2, 0), timings)).toMatchObject({
      object: "chat.completion",
      choices: [{ message: { role: "assistant", content: "abc" }, finish_reason: "stop" }],
    });
    expect(fullResponse(cmpl, "abc", "length", makeUsage(1, 2, 0), timings)).toMatchObject({
      object: "text_completion",
      choices: [{ text: "abc", finish_reason: "length" }],
    });
    expect(errorBody(400, "bad", "invalid_request_error", "prompt")).toEqual({
      error: { code: 400, message: "bad", type: "invalid_request_error", param: "prompt" },
    });
  });
});

describe("resolveServerConfig", () => {
  it("defaults, with threads set explicitly: one core left to the load generator", () => {
    const c = resolveServerConfig({ modelPath: "m.gguf" });
    expect(c.threads).toBe(defaultThreads());
    expect([defaultThreads(1), defaultThreads(2), defaultThreads(16)]).toEqual([1, 1, 15]);
    expect(c).toMatchObject({ sequences: 4, contextSize: 2048, batching: false, responseCache: false });
    expect(c.modelPath.endsWith("/m.gguf")).toBe(true);
  });

  it("switches batching and the response cache on, with the seed's defaults", () => {
    const c = resolveServerConfig({ modelPath: "m.gguf", batching: true, responseCache: true });
    expect(c.batching).toEqual({ maxBatchSize: 8, maxWaitMs: 100 });
    expect(c.responseCache).toEqual({ maxEntries: 1000 });
    expect(resolveServerConfig({ modelPath: "m", batching: { maxWaitMs: 0 } }).batching).toEqual({
      maxBatchSize: 8,
      maxWaitMs: 0,
    });
  });

  it.each([
    [{ threads: 0 }, "threads"],
    [{ sequences: 1.5 }, "sequences"],
    [{ contextSize: 8 }, "contextSize"],
    [{ batching: { maxBatchSize: 0 } }, "batching.maxBatchSize"],
    [{ batching: "yes" }, "batching"],
    [{ responseCache: { maxEntries: -1 } }, "responseCache.maxEntries"],
  ])("rejects %j naming %s", (bad, subject) => {
    expect(() => resolveServerConfig({ modelPath: "m.gguf", ...(bad as object) })).toThrow(BadInputError);
    try {
      resolveServerConfig({ modelPath: "m.gguf", ...(bad as object) });
    } catch (e) {
      expect((e as BadInputError).subject).toBe(subject);
    }
  });
});
