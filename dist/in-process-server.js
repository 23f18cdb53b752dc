import { createRequire as __tokengateCreateRequire } from "node:module";
const require = __tokengateCreateRequire(import.meta.url);
import { p as isParentMessage, L as LOOPBACK, n as nodeLlamaCppBuild } from './chunks/protocol-k0Y9jnbw.js';
import { basename } from 'node:path';
import { LlamaLogLevel, getLlama, resolveChatWrapper, TokenBias } from 'node-llama-cpp';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import 'node:net';
import './chunks/errors-B0m1Om91.js';
import 'node:fs';
import 'node:os';
import 'node:url';
import './chunks/_commonjsHelpers-Bu8mXMAf.js';
import 'readline';
import 'events';
import 'node:child_process';

/**
 * The OpenAI-compatible wire format of the in-process server: request validation and the JSON it answers, shaped like
 * llama-server's (shared/reference/llama-server/*.sse) so tokengate's one client measures every target the same way.
 * Pure: no model, no sockets.
 */
/** llama-server's sampling defaults (`/props` default_generation_settings), so both targets sample alike. */
const SAMPLING_DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 };
const MAX_STOP_STRINGS = 16;
/** A request the server refuses; becomes an OpenAI-style error body with this status. */
class RequestError extends Error {
    status;
    param;
    type;
    constructor(message, status = 400, param, type = "invalid_request_error") {
        super(message);
        this.status = status;
        this.param = param;
        this.type = type;
        this.name = "RequestError";
    }
}
function isObject(v) {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}
function optionalNumber(body, key, check, what) {
    const v = body[key];
    if (v === undefined || v === null)
        return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) {
        throw new RequestError(`'${key}' must be ${what}, got ${JSON.stringify(v)}`, 400, key);
    }
    return v;
}
function optionalBoolean(body, key) {
    const v = body[key];
    if (v === undefined || v === null)
        return undefined;
    if (typeof v !== "boolean")
        throw new RequestError(`'${key}' must be true or false, got ${JSON.stringify(v)}`, 400, key);
    return v;
}
function tokenId(v, limits, param) {
    const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= limits.vocabSize) {
        throw new RequestError(`token id ${JSON.stringify(v)} is not in the vocabulary (0..${limits.vocabSize - 1})`, 400, param);
    }
    return n;
}
/**
 * OpenAI's `{"123": -100}` and llama-server's `[[123, false], [456, -5]]`. A bias of -100 or less, or `false`, bans
 * the token (OpenAI documents -100 as "ban"); other numbers are added to the logit.
 */
function parseLogitBias(v, limits) {
    if (v === undefined || v === null)
        return [];
    const entries = Array.isArray(v)
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
    const byId = new Map();
    for (const [k, b] of entries) {
        const id = tokenId(k, limits, "logit_bias");
        let bias;
        if (b === false)
            bias = Number.NEGATIVE_INFINITY;
        else if (typeof b === "number" && Number.isFinite(b))
            bias = b <= -100 ? Number.NEGATIVE_INFINITY : b;
        else
            throw new RequestError(`logit_bias for token ${id} must be a number or false`, 400, "logit_bias");
        byId.set(id, bias);
    }
    return [...byId.entries()].sort((a, b) => a[0] - b[0]);
}
function parseStop(v) {
    if (v === undefined || v === null)
        return [];
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
        throw new RequestError("'stop' must be a string or a list of strings", 400, "stop");
    }
    if (list.length > MAX_STOP_STRINGS) {
        throw new RequestError(`'stop' has ${list.length} strings; at most ${MAX_STOP_STRINGS}`, 400, "stop");
    }
    return list.filter((s) => s !== "");
}
function messageText(content, i) {
    if (typeof content === "string")
        return content;
    // The content-parts form: [{type: "text", text: "..."}]. Only text parts make sense for a text model.
    if (Array.isArray(content)) {
        return content
            .map((part, j) => {
            if (isObject(part) && part.type === "text" && typeof part.text === "string")
                return part.text;
            throw new RequestError(`messages[${i}].content[${j}] must be a text part`, 400, "messages");
        })
            .join("");
    }
    throw new RequestError(`messages[${i}].content must be a string`, 400, "messages");
}
function parseMessages(v) {
    if (!Array.isArray(v) || v.length === 0) {
        throw new RequestError("'messages' is required: a non-empty list of {role, content}", 400, "messages");
    }
    return v.map((m, i) => {
        if (!isObject(m))
            throw new RequestError(`messages[${i}] must be an object`, 400, "messages");
        const role = m.role === "developer" ? "system" : m.role;
        if (role !== "system" && role !== "user" && role !== "assistant") {
            throw new RequestError(`messages[${i}].role must be system, user or assistant, got ${JSON.stringify(m.role)}`, 400, "messages");
        }
        return { role, content: messageText(m.content, i) };
    });
}
function parsePrompt(v, limits) {
    if (typeof v === "string")
        return { kind: "text", text: v };
    if (Array.isArray(v) && v.length === 1 && typeof v[0] === "string")
        return { kind: "text", text: v[0] };
    if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "number")) {
        return { kind: "tokens", tokens: v.map((t) => tokenId(t, limits, "prompt")) };
    }
    throw new RequestError("'prompt' is required: a string (or a list of token ids)", 400, "prompt");
}
/** Validates an OpenAI request body. Unknown fields are ignored, as OpenAI-compatible servers do. */
function parseRequest(api, body, limits) {
    if (!isObject(body))
        throw new RequestError("the request body must be a JSON object");
    const prompt = api === "chat" ? { kind: "chat", messages: parseMessages(body.messages) } : parsePrompt(body.prompt, limits);
    const n = optionalNumber(body, "n", (x) => Number.isInteger(x) && x >= 1, "a positive integer");
    if (n !== undefined && n !== 1)
        throw new RequestError("only n = 1 is supported", 400, "n");
    const isCount = (x) => Number.isInteger(x) && x >= 1;
    const maxTokens = optionalNumber(body, "max_tokens", isCount, "a positive integer") ??
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
            topK: optionalNumber(body, "top_k", (x) => Number.isInteger(x) && x >= 0, "an integer >= 0") ??
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
/** Rates from counts and milliseconds; 0 instead of Infinity/NaN (JSON has neither). */
function rate(n, ms) {
    return ms > 0 ? (n * 1000) / ms : 0;
}
function makeTimings(t) {
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
function makeUsage(promptTokens, completionTokens, cachedTokens) {
    return {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
        prompt_tokens_details: { cached_tokens: cachedTokens },
    };
}
function envelope(meta, stream) {
    const object = meta.api === "chat" ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return { id: meta.id, object, created: meta.created, model: meta.model, system_fingerprint: meta.systemFingerprint };
}
/** Chat's first chunk: llama-server sends `delta: {role, content: null}` together with the first token. */
function roleChunk(meta) {
    return {
        choices: [{ finish_reason: null, index: 0, delta: { role: "assistant", content: null } }],
        ...envelope(meta, true),
    };
}
function textChunk(meta, text) {
    const choice = meta.api === "chat"
        ? { finish_reason: null, index: 0, delta: { content: text } }
        : { text, index: 0, logprobs: null, finish_reason: null };
    return { choices: [choice], ...envelope(meta, true) };
}
/** The chunk that carries `finish_reason`; `extra` adds `usage`/`timings` when no separate usage chunk follows. */
function finishChunk(meta, reason, extra = {}) {
    const choice = meta.api === "chat"
        ? { finish_reason: reason, index: 0, delta: {} }
        : { text: "", index: 0, logprobs: null, finish_reason: reason };
    return { choices: [choice], ...envelope(meta, true), ...extra };
}
/** With `stream_options.include_usage`: the last chunk, `choices: []`, with `usage` (and `timings`, like llama-server). */
function usageChunk(meta, usage, timings) {
    return { choices: [], ...envelope(meta, true), usage, timings };
}
function fullResponse(meta, text, reason, usage, timings) {
    const choice = meta.api === "chat"
        ? { finish_reason: reason, index: 0, message: { role: "assistant", content: text } }
        : { text, index: 0, logprobs: null, finish_reason: reason };
    return { choices: [choice], ...envelope(meta, false), usage, timings };
}
/** llama-server's error body: `{"error": {"code", "message", "type"}}` plus OpenAI's `param`. */
function errorBody(status, message, type = "invalid_request_error", param) {
    return { error: { code: status, message, type, ...(param !== undefined ? { param } : {}) } };
}

const MAX_HELD_TOKENS = 4;
const REPLACEMENT = "\uFFFD";
class TextAssembler {
    detokenize;
    stop;
    pendingTokens = [];
    context;
    /** Decoded text not yet emitted because it may be the start of a stop string. */
    held = "";
    emitted = "";
    done = false;
    constructor(detokenize, stop, 
    /** The prompt's last tokens, so the first generated token keeps its leading space. */
    promptTail = []) {
        this.detokenize = detokenize;
        this.stop = stop;
        this.context = promptTail.slice(-8);
    }
    /** All text emitted so far (the non-streaming response). */
    get text() {
        return this.emitted;
    }
    push(token) {
        if (this.done)
            return { text: "", stopped: true };
        this.pendingTokens.push(token);
        const decoded = this.detokenize(this.pendingTokens, this.context);
        if (decoded.endsWith(REPLACEMENT) && this.pendingTokens.length < MAX_HELD_TOKENS)
            return { text: "", stopped: false };
        this.context = [...this.context, ...this.pendingTokens].slice(-8);
        this.pendingTokens = [];
        return this.take(decoded, false);
    }
    /** At the end of generation: everything still held. */
    flush() {
        if (this.done)
            return "";
        const decoded = this.pendingTokens.length > 0 ? this.detokenize(this.pendingTokens, this.context) : "";
        this.pendingTokens = [];
        const r = this.take(decoded, true);
        this.done = true;
        return r.text;
    }
    take(decoded, final) {
        const all = this.held + decoded;
        let cut = -1;
        for (const s of this.stop) {
            const i = all.indexOf(s);
            if (i >= 0 && (cut < 0 || i < cut))
                cut = i;
        }
        if (cut >= 0) {
            this.done = true;
            this.held = "";
            return this.emit(all.slice(0, cut), true);
        }
        const keep = final ? 0 : partialStopSuffix(all, this.stop);
        this.held = all.slice(all.length - keep);
        return this.emit(all.slice(0, all.length - keep), false);
    }
    emit(text, stopped) {
        this.emitted += text;
        return { text, stopped };
    }
}
/** Length of the longest end of `text` that is the beginning of some stop string (so it must be held back). */
function partialStopSuffix(text, stop) {
    let best = 0;
    for (const s of stop) {
        for (let len = Math.min(s.length - 1, text.length); len > best; len--) {
            if (text.endsWith(s.slice(0, len))) {
                best = len;
                break;
            }
        }
    }
    return best;
}

const LEVELS_SHOWN = new Set([LlamaLogLevel.error, LlamaLogLevel.warn, LlamaLogLevel.fatal]);
function commonPrefix(a, b) {
    const n = Math.min(a.length, b.length);
    let i = 0;
    while (i < n && a[i] === b[i])
        i++;
    return i;
}
function vocabularySize(model) {
    const tokens = model.fileInfo.metadata.tokenizer
        ?.ggml?.tokens;
    if (Array.isArray(tokens) && tokens.length > 0)
        return tokens.length;
    let n = 0;
    for (const _ of model.iterateAllTokens())
        n++;
    return n;
}
async function loadEngine(config, opts = {}) {
    const log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    // Prebuilt CPU binaries load offline; never build or download here (shared/FACTS.md). maxThreads is set to the
    // threads we want: node-llama-cpp's default, max(cores, 4), oversubscribes a 2-core machine ~250x slower.
    const llama = await getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        maxThreads: config.threads,
        logLevel: LlamaLogLevel.warn,
        logger: (level, message) => {
            if (LEVELS_SHOWN.has(level))
                log(`[llama.cpp ${level}] ${message.trimEnd()}`);
        },
    });
    let model;
    let context;
    try {
        model = await llama.loadModel({ modelPath: config.modelPath });
        context = await model.createContext({
            sequences: config.sequences,
            contextSize: config.contextSize,
            threads: config.threads,
            failedCreationRemedy: false,
            batching: {
                dispatchSchedule: opts.gate?.schedule ?? "nextCycle",
                itemPrioritizationStrategy: "maximumParallelism",
            },
        });
    }
    catch (err) {
        await llama.dispose().catch(() => { });
        throw err;
    }
    const sequences = Array.from({ length: config.sequences }, () => context.getSequence());
    const vocabSize = vocabularySize(model);
    return new NodeLlamaEngine(llama, model, context, sequences, config, vocabSize, opts.gate);
}
class NodeLlamaEngine {
    llama;
    model;
    context;
    sequences;
    vocabSize;
    gate;
    modelName;
    contextSize;
    threads;
    chatWrapper;
    /** Sequences being cleared for new requests; running generations wait for these (see `admit`). */
    admissions = new Set();
    constructor(llama, model, context, sequences, config, vocabSize, gate) {
        this.llama = llama;
        this.model = model;
        this.context = context;
        this.sequences = sequences;
        this.vocabSize = vocabSize;
        this.gate = gate;
        this.modelName = basename(config.modelPath);
        this.contextSize = context.contextSize;
        this.threads = context.idealThreads;
        // The model's own chat template (tokenizer.chat_template, through node-llama-cpp's Jinja wrapper) when it has one,
        // like llama-server; otherwise node-llama-cpp's best guess for the architecture.
        this.chatWrapper = resolveChatWrapper(model);
    }
    tokenize(prompt) {
        switch (prompt.kind) {
            case "tokens":
                return [...prompt.tokens];
            case "text": {
                // llama-server tokenizes completion prompts with special tokens parsed and BOS added; do the same.
                const tokens = this.model.tokenize(prompt.text, true);
                const bos = this.model.tokens.bos;
                if (this.model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos)
                    tokens.unshift(bos);
                return tokens;
            }
            case "chat": {
                const history = prompt.messages.map((m) => m.role === "user"
                    ? { type: "user", text: m.content }
                    : m.role === "system"
                        ? { type: "system", text: m.content }
                        : { type: "model", response: [m.content] });
                // An empty model turn at the end renders the "assistant speaks next" prompt; a trailing assistant message is
                // continued instead.
                if (prompt.messages.at(-1)?.role !== "assistant")
                    history.push({ type: "model", response: [] });
                let rendered;
                try {
                    rendered = this.chatWrapper.generateContextState({ chatHistory: history });
                }
                catch (err) {
                    throw new RequestError(`the model's chat template failed: ${err.message}`, 400, "messages");
                }
                return rendered.contextText.tokenize(this.model.tokenizer);
            }
        }
    }
    reusablePrefix(sequence, job) {
        return commonPrefix(sequence.contextTokens, job.promptTokens);
    }
    async execute(sequence, job, sink, signal) {
        const prompt = job.promptTokens;
        const p = job.params;
        // Reuse the KV cache of the common prefix (llama-server's cache_prompt). At least one prompt token is evaluated
        // again: the first generated token needs logits.
        const wanted = job.cachePrompt ? Math.min(this.reusablePrefix(sequence, job), prompt.length - 1) : 0;
        const reused = await this.admit(sequence, prompt, wanted);
        signal.throwIfAborted();
        let tokenBias;
        if (p.logitBias.length > 0) {
            tokenBias = new TokenBias(this.model.tokenizer);
            // Note: node-llama-cpp's TokenBias ignores biases on end-of-generation tokens (its documented behaviour).
            for (const [id, bias] of p.logitBias)
                tokenBias.set(id, Number.isFinite(bias) ? { logit: bias } : "never");
        }
        const limit = p.maxTokens ?? Math.max(1, this.contextSize - prompt.length);
        const text = new TextAssembler((tokens, last) => this.model.detokenize(tokens, false, last), p.stop, prompt);
        const evaluated = prompt.slice(reused);
        const iterator = sequence.evaluate(evaluated, {
            temperature: p.temperature,
            topK: p.topK,
            topP: p.topP,
            minP: p.minP,
            ...(p.seed !== undefined ? { seed: p.seed } : {}),
            ...(tokenBias ? { tokenBias } : {}),
            // With ignore_eos, end tokens are yielded and generation goes on, so exactly `limit` tokens come out and each
            // counts. (llama-server bans them instead; node-llama-cpp's TokenBias cannot ban end tokens.)
            yieldEogToken: p.ignoreEos,
        });
        const startedMs = performance.now();
        let firstMs;
        let lastMs = startedMs;
        let count = 0;
        let finishReason = "length";
        this.gate?.promptQueued();
        try {
            while (count < limit) {
                // A new request is clearing its sequence: stop queueing tokens so node-llama-cpp's batch loop can end and
                // hand over its lock (see `admit`); resume right after, in the same batch as the new prompt.
                while (this.admissions.size > 0)
                    await Promise.allSettled([...this.admissions]);
                const next = await iterator.next();
                if (next.done) {
                    finishReason = "stop";
                    break;
                }
                count++;
                lastMs = performance.now();
                firstMs ??= lastMs;
                const piece = text.push(next.value);
                if (piece.text !== "")
                    sink.onText(piece.text);
                if (piece.stopped) {
                    finishReason = "stop";
                    break;
                }
                signal.throwIfAborted();
            }
            const rest = text.flush();
            if (rest !== "")
                sink.onText(rest);
        }
        finally {
            await iterator.return();
        }
        const first = firstMs ?? lastMs;
        return {
            text: text.text,
            finishReason,
            promptTokens: prompt.length,
            completionTokens: count,
            cachedTokens: reused,
            // llama-server's definitions: prompt time ends when the first token is sampled; predicted time runs from the
            // first to the last token while predicted_n counts all of them.
            timings: makeTimings({
                cacheN: reused,
                promptN: evaluated.length,
                promptMs: first - startedMs,
                predictedN: count,
                predictedMs: lastMs - first,
            }),
            fromCache: false,
        };
    }
    /**
     * Empties `sequence` down to its first `keep` tokens (the reused prompt prefix) for a new request; returns how many
     * tokens were kept.
     *
     * Surprise in node-llama-cpp 3.21.1: erasing tokens takes the context lock, and its batch loop keeps that lock for
     * as long as decodes are queued when a batch ends. With two or more generations running, one of them has always
     * queued its next token by then (their samplings finish at different times), so a new request could not clear its
     * sequence until every running generation had finished (measured: 10-17 s, thousands of tokens). Admission turned
     * serial. So while a sequence is being cleared, running generations hold back their next token (`admissions`):
     * the queue drains, the loop ends, the erase gets the lock, and everyone continues in the next batch. The pause is
     * at most one decode step.
     */
    async admit(sequence, prompt, keep) {
        if (sequence.nextTokenIndex === 0 || (keep > 0 && sequence.nextTokenIndex === keep))
            return keep;
        const erase = (async () => {
            if (keep > 0)
                await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
            else
                await sequence.clearHistory();
        })();
        this.admissions.add(erase);
        try {
            await erase;
        }
        finally {
            this.admissions.delete(erase);
        }
        if (keep === 0)
            return 0;
        // Erasing may be refused for part of a range (models whose cache cannot be cut): trust what is left.
        const kept = commonPrefix(sequence.contextTokens, prompt);
        if (kept < prompt.length)
            return kept;
        await this.admit(sequence, prompt, 0);
        return 0;
    }
    async dispose() {
        await this.context.dispose().catch(() => { });
        await this.model.dispose().catch(() => { });
        await this.llama.dispose().catch(() => { });
    }
}

/**
 * A fixed set of sequences handed out first come, first served. `acquire` may prefer some free item (the one that
 * already holds the longest prefix of the prompt); a waiter gets whichever item is released first.
 */
class SequencePool {
    items;
    free;
    waiters = [];
    constructor(items) {
        this.items = items;
        this.free = [...items];
    }
    get size() {
        return this.items.length;
    }
    get active() {
        return this.items.length - this.free.length;
    }
    get queued() {
        return this.waiters.length;
    }
    /** Resolves with a sequence; rejects with `signal.reason` when aborted while waiting. */
    acquire(signal, score) {
        if (signal.aborted)
            return Promise.reject(signal.reason);
        if (this.free.length > 0 && this.waiters.length === 0) {
            let best = 0;
            if (score) {
                let bestScore = Number.NEGATIVE_INFINITY;
                this.free.forEach((item, i) => {
                    const s = score(item);
                    if (s > bestScore) {
                        bestScore = s;
                        best = i;
                    }
                });
            }
            const [item] = this.free.splice(best, 1);
            return Promise.resolve(item);
        }
        return new Promise((resolve, reject) => {
            const waiter = {
                resolve,
                reject,
                signal,
                onAbort: () => {
                    const i = this.waiters.indexOf(waiter);
                    if (i >= 0)
                        this.waiters.splice(i, 1);
                    reject(signal.reason);
                },
            };
            signal.addEventListener("abort", waiter.onAbort, { once: true });
            this.waiters.push(waiter);
        });
    }
    release(item) {
        const next = this.waiters.shift();
        if (next) {
            next.signal.removeEventListener("abort", next.onAbort);
            next.resolve(item);
        }
        else {
            this.free.push(item);
        }
    }
}
class SequenceScheduler {
    pool;
    execute;
    options;
    requests = 0;
    modelRuns = 0;
    constructor(pool, execute, options = { batching: false }) {
        this.pool = pool;
        this.execute = execute;
        this.options = options;
    }
    async run(job, sink, signal) {
        this.requests++;
        const score = this.options.score;
        const sequence = await this.pool.acquire(signal, score && job.cachePrompt ? (s) => score(s, job) : undefined);
        try {
            this.modelRuns++;
            return await this.execute(sequence, job, sink, signal);
        }
        finally {
            this.pool.release(sequence);
        }
    }
    stats() {
        return {
            requests: this.requests,
            modelRuns: this.modelRuns,
            cacheHits: 0,
            cacheMisses: 0,
            active: this.pool.active,
            queued: this.pool.queued,
            sequences: this.pool.size,
            batching: this.options.batching,
            responseCache: false,
        };
    }
}
// ---- the seed's request batching ---------------------------------------------------------------------------------
/**
 * The seed's BatchProcessor (`max_batch_size`, `max_wait_ms`: process when the batch is full or the wait is over),
 * mapped onto node-llama-cpp's continuous batching through `batching.dispatchSchedule`.
 *
 * node-llama-cpp queues one item per sequence that wants evaluating (a new prompt, or the next token of a running
 * generation) and calls the schedule once per batch with a `dispatch` function. The gate:
 * - dispatches on the next event-loop turn (node-llama-cpp's own `nextCycle`) when no new prompt is pending: running
 *   generations are never held just for being there;
 * - holds a batch that contains new prompts until `maxBatchSize` new prompts are pending, or as many as the free
 *   sequences can take, or `maxWaitMs` has passed since the batch was scheduled.
 * Holding a batch holds every sequence's next token too, like any server that waits to fill a batch: that cost, and
 * the larger prompt batches it buys, is what turning this on measures.
 *
 * node-llama-cpp itself dispatches at once when every sequence has an item queued (the batch cannot get fuller); the
 * schedule is still called then, with a `dispatch` that has become a no-op.
 */
class BatchGate {
    config;
    totalSequences;
    activeSequences;
    undispatchedPrompts = 0;
    dispatch;
    timer;
    immediate;
    constructor(config, totalSequences, 
    /** Sequences handed out now (prompts that are pending count as handed out). */
    activeSequences) {
        this.config = config;
        this.totalSequences = totalSequences;
        this.activeSequences = activeSequences;
    }
    /** node-llama-cpp's `batching.dispatchSchedule`. */
    schedule = (dispatch) => {
        this.clearTimers();
        this.dispatch = dispatch;
        if (this.undispatchedPrompts === 0) {
            this.fireSoon();
            return;
        }
        this.timer = setTimeout(() => this.fire(), this.config.maxWaitMs);
        this.check();
    };
    /** Called by the engine just before a new prompt is handed to node-llama-cpp for evaluation. */
    promptQueued() {
        this.undispatchedPrompts++;
        this.check();
    }
    /** New prompts that fill the batch: the configured size, capped by the sequences that could take a new prompt. */
    batchTarget() {
        const canTake = this.totalSequences - this.activeSequences() + this.undispatchedPrompts;
        return Math.max(1, Math.min(this.config.maxBatchSize, canTake));
    }
    check() {
        if (this.dispatch !== undefined && this.undispatchedPrompts >= this.batchTarget())
            this.fireSoon();
    }
    /**
     * On the next turn, not now: the prompt that completed the batch is counted just before node-llama-cpp queues it
     * (a few promise turns later); dispatching synchronously would leave it for the next batch.
     */
    fireSoon() {
        this.immediate ??= setImmediate(() => this.fire());
    }
    fire() {
        this.clearTimers();
        const dispatch = this.dispatch;
        this.dispatch = undefined;
        this.undispatchedPrompts = 0;
        dispatch?.();
    }
    clearTimers() {
        if (this.timer !== undefined)
            clearTimeout(this.timer);
        if (this.immediate !== undefined)
            clearImmediate(this.immediate);
        this.timer = undefined;
        this.immediate = undefined;
    }
}
/**
 * The seed's ResponseCache key: sha256 of the prompt and the parameters that shape the output. Only temperature-0
 * requests are cacheable (greedy decoding is deterministic; sampled output is not meant to repeat), so the seed is
 * not part of the key. Returns undefined for requests that must not be cached.
 */
function responseCacheKey(job) {
    const p = job.params;
    if (p.temperature !== 0)
        return undefined;
    const material = JSON.stringify({
        prompt: job.promptTokens,
        maxTokens: p.maxTokens ?? null,
        ignoreEos: p.ignoreEos,
        topK: p.topK,
        topP: p.topP,
        minP: p.minP,
        // JSON has no -Infinity: write bans as a word so a ban and a bias of null cannot collide.
        logitBias: p.logitBias.map(([id, b]) => [id, Number.isFinite(b) ? b : "ban"]),
        stop: p.stop,
    });
    return createHash("sha256").update(material).digest("hex");
}
/** Least recently used entries go first once `maxEntries` is reached (a Map iterates in insertion order). */
class ResponseCache {
    maxEntries;
    entries = new Map();
    constructor(maxEntries) {
        this.maxEntries = maxEntries;
    }
    get size() {
        return this.entries.size;
    }
    get(key) {
        const e = this.entries.get(key);
        if (e !== undefined) {
            this.entries.delete(key);
            this.entries.set(key, e);
        }
        return e;
    }
    set(key, entry) {
        this.entries.delete(key);
        this.entries.set(key, entry);
        while (this.entries.size > this.maxEntries) {
            const oldest = this.entries.keys().next().value;
            if (oldest === undefined)
                break;
            this.entries.delete(oldest);
        }
    }
}
/**
 * Answers repeated temperature-0 requests from a ResponseCache, replaying the stored text pieces so a streaming
 * client still sees a stream. Misses run the inner scheduler and are stored when they complete (not when aborted or
 * failed). Two identical requests in flight at once both run the model: no request coalescing.
 */
class CachingScheduler {
    inner;
    cache;
    hits = 0;
    misses = 0;
    constructor(inner, cache) {
        this.inner = inner;
        this.cache = cache;
    }
    async run(job, sink, signal) {
        const key = responseCacheKey(job);
        if (key === undefined)
            return this.inner.run(job, sink, signal);
        const hit = this.cache.get(key);
        if (hit !== undefined) {
            this.hits++;
            return replay(hit, sink, signal);
        }
        this.misses++;
        const pieces = [];
        const result = await this.inner.run(job, {
            onText: (text) => {
                pieces.push(text);
                sink.onText(text);
            },
        }, signal);
        if (!signal.aborted) {
            this.cache.set(key, {
                pieces,
                finishReason: result.finishReason,
                promptTokens: result.promptTokens,
                completionTokens: result.completionTokens,
            });
        }
        return result;
    }
    stats() {
        const s = this.inner.stats();
        return {
            ...s,
            requests: s.requests + this.hits,
            cacheHits: this.hits,
            cacheMisses: this.misses,
            responseCache: true,
        };
    }
}
function replay(entry, sink, signal) {
    const started = performance.now();
    for (const piece of entry.pieces) {
        if (signal.aborted)
            break;
        sink.onText(piece);
    }
    return {
        text: entry.pieces.join(""),
        finishReason: entry.finishReason,
        promptTokens: entry.promptTokens,
        completionTokens: entry.completionTokens,
        cachedTokens: entry.promptTokens,
        // Nothing was evaluated: the whole prompt counts as cached and "decoding" is the replay.
        timings: makeTimings({
            cacheN: entry.promptTokens,
            promptN: 0,
            promptMs: 0,
            predictedN: entry.completionTokens,
            predictedMs: performance.now() - started,
        }),
        fromCache: true,
    };
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;
const ROUTES = {
    "/health": { method: "GET" },
    "/v1/models": { method: "GET" },
    "/tokengate/stats": { method: "GET" },
    "/v1/chat/completions": { method: "POST", api: "chat" },
    "/chat/completions": { method: "POST", api: "chat" },
    "/v1/completions": { method: "POST", api: "completions" },
    "/completions": { method: "POST", api: "completions" },
};
function sendJson(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(text),
    });
    res.end(text);
}
function sendError(res, status, message, type, param) {
    if (res.headersSent) {
        res.destroy();
        return;
    }
    sendJson(res, status, errorBody(status, message, type, param));
}
function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on("data", (c) => {
            size += c.length;
            if (size > MAX_BODY_BYTES) {
                reject(new RequestError(`request body larger than ${MAX_BODY_BYTES} bytes`, 413));
                req.destroy();
                return;
            }
            chunks.push(c);
        });
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
    });
}
function createInProcessServer(state) {
    const server = createServer((req, res) => {
        handle(state, req, res).catch((err) => {
            if (err instanceof RequestError)
                sendError(res, err.status, err.message, err.type, err.param);
            else
                sendError(res, 500, err?.message ?? String(err), "server_error");
        });
    });
    // Benchmarks keep connections open between requests; Node's 5 s default keep-alive would close idle ones mid-run.
    server.keepAliveTimeout = 65_000;
    return server;
}
async function handle(state, req, res) {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const route = ROUTES[path];
    if (route === undefined) {
        sendError(res, 404, `no route ${path}`, "not_found_error");
        return;
    }
    if (req.method !== route.method) {
        res.setHeader("allow", route.method);
        sendError(res, 405, `${path} takes ${route.method}`, "invalid_request_error");
        return;
    }
    const model = state.model;
    if (model === undefined) {
        sendError(res, 503, "Loading model", "unavailable_error");
        return;
    }
    switch (path) {
        case "/health":
            sendJson(res, 200, { status: "ok" });
            return;
        case "/v1/models":
            sendJson(res, 200, {
                object: "list",
                data: [
                    {
                        id: model.modelName,
                        object: "model",
                        created: Math.floor(Date.now() / 1000),
                        owned_by: "tokengate",
                        meta: { n_ctx: model.contextSize, n_vocab: model.vocabSize },
                    },
                ],
            });
            return;
        case "/tokengate/stats":
            sendJson(res, 200, { ...model.scheduler.stats(), ...model.describe() });
            return;
    }
    const raw = await readBody(req);
    let body;
    try {
        body = JSON.parse(raw.toString("utf8"));
    }
    catch (err) {
        throw new RequestError(`the request body is not valid JSON: ${err.message}`);
    }
    const parsed = parseRequest(route.api, body, { vocabSize: model.vocabSize });
    await generate(model, parsed, res);
}
function responseMeta(model, api) {
    return {
        api,
        id: `${api === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`,
        created: Math.floor(Date.now() / 1000),
        model: model.modelName,
        systemFingerprint: model.systemFingerprint,
    };
}
async function generate(model, request, res) {
    const promptTokens = model.tokenize(request.prompt);
    if (promptTokens.length === 0)
        throw new RequestError("the prompt is empty", 400, "prompt");
    if (promptTokens.length >= model.contextSize) {
        // llama-server's answer to the same problem (shared/FACTS.md): HTTP 400 exceed_context_size_error.
        throw new RequestError(`the prompt has ${promptTokens.length} tokens; the context of a sequence holds ${model.contextSize}`, 400, request.api === "chat" ? "messages" : "prompt", "exceed_context_size_error");
    }
    const job = { promptTokens, params: request.params, cachePrompt: request.cachePrompt };
    const meta = responseMeta(model, request.api);
    const abort = new AbortController();
    // "close" also fires after a normal end; only a close before the response finished is a disconnect.
    res.on("close", () => {
        if (!res.writableFinished)
            abort.abort(new Error("the client disconnected"));
    });
    if (!request.stream) {
        let result;
        try {
            result = await model.scheduler.run(job, { onText: () => { } }, abort.signal);
        }
        catch (err) {
            if (abort.signal.aborted)
                return;
            throw err;
        }
        sendJson(res, 200, fullResponse(meta, result.text, result.finishReason, makeUsage(result.promptTokens, result.completionTokens, result.cachedTokens), result.timings));
        return;
    }
    res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    });
    res.flushHeaders();
    const send = (chunk) => {
        if (!res.writableEnded && !res.destroyed)
            res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    let roleSent = request.api !== "chat";
    const sendRole = () => {
        if (!roleSent)
            send(roleChunk(meta));
        roleSent = true;
    };
    let result;
    try {
        result = await model.scheduler.run(job, {
            onText: (text) => {
                sendRole();
                send(textChunk(meta, text));
            },
        }, abort.signal);
    }
    catch (err) {
        if (abort.signal.aborted)
            return;
        // Headers are gone: report like llama-server does mid-stream, as an error event (clients count the request failed).
        send(errorBody(500, err?.message ?? String(err), "server_error"));
        res.end();
        return;
    }
    sendRole();
    const usage = makeUsage(result.promptTokens, result.completionTokens, result.cachedTokens);
    if (request.includeUsage) {
        send(finishChunk(meta, result.finishReason));
        send(usageChunk(meta, usage, result.timings));
    }
    else {
        // Without include_usage llama-server still puts `timings` on the last chunk (and `usage` for /v1/completions).
        send(finishChunk(meta, result.finishReason, {
            ...(request.api === "completions" ? { usage } : {}),
            timings: result.timings,
        }));
    }
    res.write("data: [DONE]\n\n");
    res.end();
}

/**
 * Entry of the forked model server (target.ts forks this file; the bundle ships it as dist/in-process-server.js).
 * It does nothing until the parent sends `start` over IPC, and it stops on SIGTERM/SIGINT or when the IPC channel
 * closes (the parent is gone), so it never outlives tokengate.
 */
let server;
let engine;
let stopping = false;
/** Resolves once the message is handed to the IPC channel, so a `failed` sent just before exiting is not lost. */
function send(message) {
    return new Promise((resolve) => {
        if (!process.send?.(message, undefined, {}, () => resolve()))
            resolve();
    });
}
/** node-llama-cpp's errors for a file it cannot use as a model (vs. anything else, e.g. too little memory). */
function failureKind(err) {
    const e = err;
    if (e.code === "ENOENT" || e.code === "EISDIR" || e.code === "EACCES")
        return "bad-model";
    if (/Gguf|GGUF/.test(e.name ?? ""))
        return "bad-model";
    if (/failed to load model|invalid gguf|gguf/i.test(e.message ?? ""))
        return "bad-model";
    return "could-not-run";
}
async function start(config) {
    const state = { model: undefined };
    server = createInProcessServer(state);
    const s = server;
    await new Promise((resolve, reject) => {
        s.once("error", reject);
        s.listen({ host: LOOPBACK, port: 0 }, () => resolve());
    });
    await send({ type: "listening", port: s.address().port });
    const started = performance.now();
    let scheduler;
    const gate = config.batching
        ? new BatchGate(config.batching, config.sequences, () => scheduler?.stats().active ?? 0)
        : undefined;
    // node-llama-cpp's own error says only "Failed to load model"; llama.cpp's log line says why.
    let loadError;
    const log = (line) => {
        process.stderr.write(`${line}\n`);
        loadError = /error loading model: (.*)$/.exec(line)?.[1] ?? loadError;
    };
    try {
        engine = await loadEngine(config, gate ? { gate, log } : { log });
    }
    catch (err) {
        const message = err?.message ?? String(err);
        await send({
            type: "failed",
            kind: failureKind(err),
            message: loadError !== undefined ? `${message} (llama.cpp: ${loadError})` : message,
        });
        await shutdown(1);
        return;
    }
    const e = engine;
    const base = new SequenceScheduler(new SequencePool(e.sequences), (seq, job, sink, signal) => e.execute(seq, job, sink, signal));
    scheduler = config.responseCache
        ? new CachingScheduler(base, new ResponseCache(config.responseCache.maxEntries))
        : base;
    const options = {
        threads: e.threads,
        contextSize: e.contextSize,
        batching: config.batching !== false,
        ...(config.batching
            ? { batchMaxSize: config.batching.maxBatchSize, batchMaxWaitMs: config.batching.maxWaitMs }
            : {}),
    };
    const sched = scheduler;
    state.model = {
        scheduler: sched,
        tokenize: (p) => e.tokenize(p),
        modelName: e.modelName,
        contextSize: e.contextSize,
        vocabSize: e.vocabSize,
        systemFingerprint: nodeLlamaCppBuild().label,
        describe: () => options,
    };
    await send({
        type: "ready",
        info: {
            modelName: e.modelName,
            contextSize: e.contextSize,
            threads: e.threads,
            vocabSize: e.vocabSize,
            loadMs: Math.round(performance.now() - started),
        },
    });
}
/** A dispose that hangs (a native call that does not return) must not keep the child alive: exit anyway. */
const SHUTDOWN_DEADLINE_MS = 3000;
async function shutdown(code) {
    if (stopping)
        return;
    stopping = true;
    setTimeout(() => process.exit(code), SHUTDOWN_DEADLINE_MS).unref();
    server?.close();
    server?.closeAllConnections();
    await engine?.dispose();
    process.exit(code);
}
function main() {
    if (process.send === undefined) {
        process.stderr.write("tokengate's in-process server is started by tokengate (it talks to its parent over IPC)\n");
        process.exit(2);
    }
    process.on("message", (m) => {
        if (!isParentMessage(m) || server !== undefined)
            return;
        start(m.config).catch((err) => {
            process.stderr.write(`in-process server failed: ${err?.stack ?? String(err)}\n`);
            void send({ type: "failed", kind: "could-not-run", message: err?.message ?? String(err) }).then(() => shutdown(1));
        });
    });
    for (const signal of ["SIGTERM", "SIGINT"])
        process.on(signal, () => void shutdown(0));
    // The parent is gone (also by SIGKILL: the kernel closes its end of the IPC socket): so are we. This is the
    // in-process child's parent-death signal (fork() runs node itself; the IPC channel does what setpriv does).
    process.on("disconnect", () => void shutdown(0));
}
main();
