/**
 * The OpenAI-compatible wire format of the in-process server: request validation and the JSON it answers, shaped like
 * llama-server's (shared/reference/llama-server/*.sse) so tokengate's one client measures every target the same way.
 * Pure: no model, no sockets.
 */

export type OpenAiApi = "chat" | "completions";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export type PromptInput =
  | { kind: "text"; text: string }
  | { kind: "tokens"; tokens: number[] }
  | { kind: "chat"; messages: ChatMessage[] };

/** Sampling and stopping, resolved with llama-server's defaults. Part of the response-cache key. */
export interface SamplingParams {
  /** Tokens to generate at most; undefined = until an end token or the context is full. */
  maxTokens: number | undefined;
  /** Keep generating through end-of-generation tokens, so exactly `maxTokens` tokens come out. */
  ignoreEos: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  /** Sampler seed; undefined = random (llama-server's -1). */
  seed: number | undefined;
  /** [token id, logit bias] sorted by id; -Infinity bans the token. */
  logitBias: [number, number][];
  stop: string[];
}

export interface ParsedRequest {
  api: OpenAiApi;
  prompt: PromptInput;
  params: SamplingParams;
  stream: boolean;
  /** `stream_options.include_usage`: a final `choices: []` chunk with `usage`. */
  includeUsage: boolean;
  /** llama-server's `cache_prompt` (default true): reuse the KV cache of a common prompt prefix. */
  cachePrompt: boolean;
}

/** llama-server's sampling defaults (`/props` default_generation_settings), so both targets sample alike. */
export const SAMPLING_DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 } as const;

const MAX_STOP_STRINGS = 16;

/** A request the server refuses; becomes an OpenAI-style error body with this status. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly param?: string,
    readonly type = "invalid_request_error",
  ) {
    super(message);
    this.name = "RequestError";
  }
}

export interface ParseLimits {
  /** Token ids in logit_bias and token prompts must be below this. */
  vocabSize: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalNumber(body: Json, key: string, check: (n: number) => boolean, what: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) {
    throw new RequestError(`'${key}' must be ${what}, got ${JSON.stringify(v)}`, 400, key);
  }
  return v;
}

function optionalBoolean(body: Json, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean")
    throw new RequestError(`'${key}' must be true or false, got ${JSON.stringify(v)}`, 400, key);
  return v;
}

function tokenId(v: unknown, limits: ParseLimits, param: string): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= limits.vocabSize) {
    throw new RequestError(
      `token id ${JSON.stringify(v)} is not in the vocabulary (0..${limits.vocabSize - 1})`,
      400,
      param,
    );
  }
  return n;
}

/**
 * OpenAI's `{"123": -100}` and llama-server's `[[123, false], [456, -5]]`. A bias of -100 or less, or `false`, bans
 * the token (OpenAI documents -100 as "ban"); other numbers are added to the logit.
 */
function parseLogitBias(v: unknown, limits: ParseLimits): [number, number][] {
  if (v === undefined || v === null) return [];
  const entries: [unknown, unknown][] = Array.isArray(v)
    ? v.map((e, i) => {
        if (!Array.isArray(e) || e.length !== 2) {
          throw new RequestError(`logit_bias[${i}] must be a [token id, bias] pair`, 400, "logit_bias");
        }
        return [e[0], e[1]];
      })
    : isObject(v)
      ? Object.entries(v)
      : (() => {
          throw new RequestError("'logit_bias' must be an object of token id -> bias", 400, "logit_bias");
        })();
  const byId = new Map<number, number>();
  for (const [k, b] of entries) {
    const id = tokenId(k, limits, "logit_bias");
    let bias: number;
    if (b === false) bias = Number.NEGATIVE_INFINITY;
    else if (typeof b === "number" && Number.isFinite(b)) bias = b <= -100 ? Number.NEGATIVE_INFINITY : b;
    else throw new RequestError(`logit_bias for token ${id} must be a number or false`, 400, "logit_bias");
    byId.set(id, bias);
  }
  return [...byId.entries()].sort((a, b) => a[0] - b[0]);
}

function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
    throw new RequestError("'stop' must be a string or a list of strings", 400, "stop");
  }
  if (list.length > MAX_STOP_STRINGS) {
    throw new RequestError(`'stop' has ${list.length} strings; at most ${MAX_STOP_STRINGS}`, 400, "stop");
  }
  return (list as string[]).filter((s) => s !== "");
}

function messageText(content: unknown, i: number): string {
  if (typeof content === "string") return content;
  // The content-parts form: [{type: "text", text: "..."}]. Only text parts make sense for a text model.
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        if (isObject(part) && part.type === "text" && typeof part.text === "string") return part.text;
        throw new RequestError(`messages[${i}].content[${j}] must be a text part`, 400, "messages");
      })
      .join("");
  }
  throw new RequestError(`messages[${i}].content must be a string`, 400, "messages");
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new RequestError("'messages' is required: a non-empty list of {role, content}", 400, "messages");
  }
  return v.map((m, i) => {
    if (!isObject(m)) throw new RequestError(`messages[${i}] must be an object`, 400, "messages");
    const role = m.role === "developer" ? "system" : m.role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw new RequestError(
        `messages[${i}].role must be system, user or assistant, got ${JSON.stringify(m.role)}`,
        400,
        "messages",
      );
    }
    return { role, content: messageText(m.content, i) };
  });
}

function parsePrompt(v: unknown, limits: ParseLimits): PromptInput {
  if (typeof v === "string") return { kind: "text", text: v };
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === "string") return { kind: "text", text: v[0] };
  if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "number")) {
    return { kind: "tokens", tokens: v.map((t) => tokenId(t, limits, "prompt")) };
  }
  throw new RequestError("'prompt' is required: a string (or a list of token ids)", 400, "prompt");
}

/** Validates an OpenAI request body. Unknown fields are ignored, as OpenAI-compatible servers do. */
export function parseRequest(api: OpenAiApi, body: unknown, limits: ParseLimits): ParsedRequest {
  if (!isObject(body)) throw new RequestError("the request body must be a JSON object");
  const prompt: PromptInput =
    api === "chat" ? { kind: "chat", messages: parseMessages(body.messages) } : parsePrompt(body.prompt, limits);
  const n = optionalNumber(body, "n", (x) => Number.isInteger(x) && x >= 1, "a positive integer");
  if (n !== undefined && n !== 1) throw new RequestError("only n = 1 is supported", 400, "n");
  const isCount = (x: number) => Number.isInteger(x) && x >= 1;
  const maxTokens =
    optionalNumber(body, "max_tokens", isCount, "a positive integer") ??
    optionalNumber(body, "max_completion_tokens", isCount, "a positive integer") ??
    optionalNumber(body, "n_predict", isCount, "a positive integer");
  const seed = optionalNumber(body, "seed", Number.isInteger, "an integer");
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && !isObject(streamOptions)) {
    throw new RequestError("'stream_options' must be an object", 400, "stream_options");
  }
  const includeUsage = isObject(streamOptions) ? optionalBoolean(streamOptions, "include_usage") : undefined;
  return {
    api,
    prompt,
    params: {
      maxTokens,
      ignoreEos: optionalBoolean(body, "ignore_eos") ?? false,
      temperature: optionalNumber(body, "temperature", (x) => x >= 0, "a number >= 0") ?? SAMPLING_DEFAULTS.temperature,
      topK:
        optionalNumber(body, "top_k", (x) => Number.isInteger(x) && x >= 0, "an integer >= 0") ??
        SAMPLING_DEFAULTS.topK,
      topP: optionalNumber(body, "top_p", (x) => x > 0 && x <= 1, "a number in (0, 1]") ?? SAMPLING_DEFAULTS.topP,
      minP: optionalNumber(body, "min_p", (x) => x >= 0 && x <= 1, "a number in [0, 1]") ?? SAMPLING_DEFAULTS.minP,
      // llama-server's -1 (and any negative seed) means "random".
      seed: seed === undefined || seed < 0 ? undefined : seed,
      logitBias: parseLogitBias(body.logit_bias, limits),
      stop: parseStop(body.stop),
    },
    stream: optionalBoolean(body, "stream") ?? false,
    includeUsage: includeUsage ?? false,
    cachePrompt: optionalBoolean(body, "cache_prompt") ?? true,
  };
}

// ---- responses -------------------------------------------------------------------------------------------------

/** llama-server's per-request `timings` (shared/FACTS.md), which tokengate's client cross-checks. */
export interface Timings {
  cache_n: number;
  prompt_n: number;
  prompt_ms: number;
  prompt_per_token_ms: number;
  prompt_per_second: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_token_ms: number;
  predicted_per_second: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export type FinishReason = "length" | "stop";

/** Fields every response and chunk of one request shares. */
export interface ResponseMeta {
  api: OpenAiApi;
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  systemFingerprint: string;
}

/** Rates from counts and milliseconds; 0 instead of Infinity/NaN (JSON has neither). */
function rate(n: number, ms: number): number {
  return ms > 0 ? (n * 1000) / ms : 0;
}

export function makeTimings(t: {
  cacheN: number;
  promptN: number;
  promptMs: number;
  predictedN: number;
  predictedMs: number;
}): Timings {
  return {
    cache_n: t.cacheN,
    prompt_n: t.promptN,
    prompt_ms: t.promptMs,
    prompt_per_token_ms: t.promptN > 0 ? t.promptMs / t.promptN : 0,
    prompt_per_second: rate(t.promptN, t.promptMs),
    predicted_n: t.predictedN,
    predicted_ms: t.predictedMs,
    predicted_per_token_ms: t.predictedN > 0 ? t.predictedMs / t.predictedN : 0,
    predicted_per_second: rate(t.predictedN, t.predictedMs),
  };
}

export function makeUsage(promptTokens: number, completionTokens: number, cachedTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}

function envelope(meta: ResponseMeta, stream: boolean): Json {
  const object = meta.api === "chat" ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return { id: meta.id, object, created: meta.created, model: meta.model, system_fingerprint: meta.systemFingerprint };
}

/** Chat's first chunk: llama-server sends `delta: {role, content: null}` together with the first token. */
export function roleChunk(meta: ResponseMeta): Json {
  return {
    choices: [{ finish_reason: null, index: 0, delta: { role: "assistant", content: null } }],
    ...envelope(meta, true),
  };
}

export function textChunk(meta: ResponseMeta, text: string): Json {
  const choice =
    meta.api === "chat"
      ? { finish_reason: null, index: 0, delta: { content: text } }
      : { text, index: 0, logprobs: null, finish_reason: null };
  return { choices: [choice], ...envelope(meta, true) };
}

/** The chunk that carries `finish_reason`; `extra` adds `usage`/`timings` when no separate usage chunk follows. */
export function finishChunk(meta: ResponseMeta, reason: FinishReason, extra: Json = {}): Json {
  const choice =
    meta.api === "chat"
      ? { finish_reason: reason, index: 0, delta: {} }
      : { text: "", index: 0, logprobs: null, finish_reason: reason };
  return { choices: [choice], ...envelope(meta, true), ...extra };
}

/** With `stream_options.include_usage`: the last chunk, `choices: []`, with `usage` (and `timings`, like llama-server). */
export function usageChunk(meta: ResponseMeta, usage: Usage, timings: Timings): Json {
  return { choices: [], ...envelope(meta, true), usage, timings };
}

export function fullResponse(
  meta: ResponseMeta,
  text: string,
  reason: FinishReason,
  usage: Usage,
  timings: Timings,
): Json {
  const choice =
    meta.api === "chat"
      ? { finish_reason: reason, index: 0, message: { role: "assistant", content: text } }
      : { text, index: 0, logprobs: null, finish_reason: reason };
  return { choices: [choice], ...envelope(meta, false), usage, timings };
}

/** llama-server's error body: `{"error": {"code", "message", "type"}}` plus OpenAI's `param`. */
export function errorBody(status: number, message: string, type = "invalid_request_error", param?: string): Json {
  return { error: { code: status, message, type, ...(param !== undefined ? { param } : {}) } };
}
