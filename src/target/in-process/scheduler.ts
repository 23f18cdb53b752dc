import { createHash } from "node:crypto";
import type { FinishReason, SamplingParams, Timings } from "./openai.js";
import { makeTimings } from "./openai.js";
import type { BatchingConfig } from "./options.js";

/**
 * The seam between the HTTP server and the model: a `Scheduler` runs one generation. The plain one hands each request
 * a free sequence of the llama.cpp context (FIFO when all are busy); the seed's two optimisations are switchable
 * layers around it, so their effect can be measured: a response cache (`CachingScheduler`) and a batch gate
 * (`BatchGate`, node-llama-cpp's `batching.dispatchSchedule`). Pure apart from timers: the model is behind `Executor`.
 */
export interface GenerationJob {
  promptTokens: number[];
  params: SamplingParams;
  /** Reuse the KV cache of a common prompt prefix on the chosen sequence (llama-server's `cache_prompt`). */
  cachePrompt: boolean;
}

export interface GenerationSink {
  /** A piece of generated text, in order; never empty. */
  onText(text: string): void;
}

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  /** Tokens generated, end tokens included when `ignoreEos` kept them (so it equals max_tokens then). */
  completionTokens: number;
  /** Prompt tokens whose KV cache was reused. */
  cachedTokens: number;
  timings: Timings;
  /** Answered by the response cache, without running the model. */
  fromCache: boolean;
}

export interface SchedulerStats {
  /** Generation requests that reached the scheduler. */
  requests: number;
  /** Generations that ran the model. */
  modelRuns: number;
  cacheHits: number;
  cacheMisses: number;
  /** Sequences generating now. */
  active: number;
  /** Requests waiting for a free sequence. */
  queued: number;
  sequences: number;
  batching: boolean;
  responseCache: boolean;
}

export interface Scheduler {
  run(job: GenerationJob, sink: GenerationSink, signal: AbortSignal): Promise<GenerationResult>;
  stats(): SchedulerStats;
}

// ---- sequences ---------------------------------------------------------------------------------------------------

interface Waiter<S> {
  resolve(item: S): void;
  reject(err: unknown): void;
  signal: AbortSignal;
  onAbort(): void;
}

/**
 * A fixed set of sequences handed out first come, first served. `acquire` may prefer some free item (the one that
 * already holds the longest prefix of the prompt); a waiter gets whichever item is released first.
 */
export class SequencePool<S> {
  private readonly free: S[];
  private readonly waiters: Waiter<S>[] = [];

  constructor(private readonly items: readonly S[]) {
    this.free = [...items];
  }

  get size(): number {
    return this.items.length;
  }

  get active(): number {
    return this.items.length - this.free.length;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /** Resolves with a sequence; rejects with `signal.reason` when aborted while waiting. */
  acquire(signal: AbortSignal, score?: (item: S) => number): Promise<S> {
    if (signal.aborted) return Promise.reject(signal.reason);
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
      return Promise.resolve(item as S);
    }
    return new Promise<S>((resolve, reject) => {
      const waiter: Waiter<S> = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(item: S): void {
    const next = this.waiters.shift();
    if (next) {
      next.signal.removeEventListener("abort", next.onAbort);
      next.resolve(item);
    } else {
      this.free.push(item);
    }
  }
}

/** Runs one generation on one sequence (the model side; see engine.ts). */
export type Executor<S> = (
  sequence: S,
  job: GenerationJob,
  sink: GenerationSink,
  signal: AbortSignal,
) => Promise<GenerationResult>;

export class SequenceScheduler<S> implements Scheduler {
  private requests = 0;
  private modelRuns = 0;

  constructor(
    private readonly pool: SequencePool<S>,
    private readonly execute: Executor<S>,
    private readonly options: {
      batching: boolean;
      /** How well a free sequence suits a job (e.g. its reusable prompt prefix length); highest wins. */
      score?: (sequence: S, job: GenerationJob) => number;
    } = { batching: false },
  ) {}

  async run(job: GenerationJob, sink: GenerationSink, signal: AbortSignal): Promise<GenerationResult> {
    this.requests++;
    const score = this.options.score;
    const sequence = await this.pool.acquire(signal, score && job.cachePrompt ? (s) => score(s, job) : undefined);
    try {
      this.modelRuns++;
      return await this.execute(sequence, job, sink, signal);
    } finally {
      this.pool.release(sequence);
    }
  }

  stats(): SchedulerStats {
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
export class BatchGate {
  private undispatchedPrompts = 0;
  private dispatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  constructor(
    private readonly config: BatchingConfig,
    private readonly totalSequences: number,
    /** Sequences handed out now (prompts that are pending count as handed out). */
    private readonly activeSequences: () => number,
  ) {}

  /** node-llama-cpp's `batching.dispatchSchedule`. */
  readonly schedule = (dispatch: () => void): void => {
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
  promptQueued(): void {
    this.undispatchedPrompts++;
    this.check();
  }

  /** New prompts that fill the batch: the configured size, capped by the sequences that could take a new prompt. */
  batchTarget(): number {
    const canTake = this.totalSequences - this.activeSequences() + this.undispatchedPrompts;
    return Math.max(1, Math.min(this.config.maxBatchSize, canTake));
  }

  private check(): void {
    if (this.dispatch !== undefined && this.undispatchedPrompts >= this.batchTarget()) this.fireSoon();
  }

  /**
   * On the next turn, not now: the prompt that completed the batch is counted just before node-llama-cpp queues it
   * (a few promise turns later); dispatching synchronously would leave it for the next batch.
   */
  private fireSoon(): void {
    this.immediate ??= setImmediate(() => this.fire());
  }

  private fire(): void {
    this.clearTimers();
    const dispatch = this.dispatch;
    this.dispatch = undefined;
    this.undispatchedPrompts = 0;
    dispatch?.();
  }

  private clearTimers(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}

// ---- the seed's response cache -----------------------------------------------------------------------------------

interface CacheEntry {
  pieces: string[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
}

/**
 * The seed's ResponseCache key: sha256 of the prompt and the parameters that shape the output. Only temperature-0
 * requests are cacheable (greedy decoding is deterministic; sampled output is not meant to repeat), so the seed is
 * not part of the key. Returns undefined for requests that must not be cached.
 */
export function responseCacheKey(job: GenerationJob): string | undefined {
  const p = job.params;
  if (p.temperature !== 0) return undefined;
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
export class ResponseCache {
  private readonly entries = new Map<string, CacheEntry>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): CacheEntry | undefined {
    const e = this.entries.get(key);
    if (e !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  set(key: string, entry: CacheEntry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}

/**
 * Answers repeated temperature-0 requests from a ResponseCache, replaying the stored text pieces so a streaming
 * client still sees a stream. Misses run the inner scheduler and are stored when they complete (not when aborted or
 * failed). Two identical requests in flight at once both run the model: no request coalescing.
 */
export class CachingScheduler implements Scheduler {
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly inner: Scheduler,
    private readonly cache: ResponseCache,
  ) {}

  async run(job: GenerationJob, sink: GenerationSink, signal: AbortSignal): Promise<GenerationResult> {
    const key = responseCacheKey(job);
    if (key === undefined) return this.inner.run(job, sink, signal);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.hits++;
      return replay(hit, sink, signal);
    }
    this.misses++;
    const pieces: string[] = [];
    const result = await this.inner.run(
      job,
      {
        onText: (text) => {
          pieces.push(text);
          sink.onText(text);
        },
      },
      signal,
    );
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

  stats(): SchedulerStats {
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

function replay(entry: CacheEntry, sink: GenerationSink, signal: AbortSignal): GenerationResult {
  const started = performance.now();
  for (const piece of entry.pieces) {
    if (signal.aborted) break;
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
