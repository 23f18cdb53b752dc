import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { BadInputError } from "../../util/errors.js";

/**
 * Options of the in-process target (a GGUF loaded by node-llama-cpp in a forked child, served over a small
 * OpenAI-compatible HTTP endpoint). Every field has a default; the resolved values are recorded in the fingerprint.
 */
export interface InProcessTargetOptions {
  /** The GGUF model file. */
  modelPath: string;
  /**
   * CPU threads for evaluation. Default: the number of cores minus one (at least 1); see `defaultThreads`.
   * Always passed explicitly: node-llama-cpp's own default is max(cores, 4), which oversubscribes a 2-core machine.
   */
  threads?: number;
  /**
   * Parallel sequences in the one llama.cpp context (like llama-server's `--parallel`). Concurrent requests are decoded
   * together in one batch; requests beyond this wait in a FIFO queue for a free sequence. Default 4.
   */
  sequences?: number;
  /** Context size per sequence, in tokens. Default 2048. */
  contextSize?: number;
  /**
   * The seed's request batching (max batch size, max wait), on top of node-llama-cpp's own batching across sequences.
   * `false` (default): dispatch each batch on the next event-loop turn, node-llama-cpp's default. `true` or an object:
   * hold a batch that has new prompts in it until `maxBatchSize` new prompts are pending (capped by the sequences that
   * can take one) or `maxWaitMs` has passed. See scheduler.ts `BatchGate`.
   */
  batching?: boolean | { maxBatchSize?: number; maxWaitMs?: number };
  /**
   * The seed's response cache: a temperature-0 request whose prompt and parameters were seen before is answered from
   * memory (still streamed) without running the model. `false` (default), `true`, or `{ maxEntries }` (default 1000).
   */
  responseCache?: boolean | { maxEntries?: number };
  /** Where the child's stdout+stderr go. Default: a file in a new temp folder. */
  logFile?: string;
  /** How long to wait for the model to load. Default 120 000 ms. */
  startTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop. Default 5000 ms. */
  stopGraceMs?: number;
}

export interface BatchingConfig {
  maxBatchSize: number;
  maxWaitMs: number;
}

/** What the child needs to serve: plain JSON, sent over IPC. */
export interface ServerConfig {
  modelPath: string;
  threads: number;
  sequences: number;
  contextSize: number;
  batching: BatchingConfig | false;
  responseCache: { maxEntries: number } | false;
}

/** The seed's BatchProcessor defaults (shared/seed: `max_batch_size=8, max_wait_ms=100`). */
export const DEFAULT_BATCHING: BatchingConfig = { maxBatchSize: 8, maxWaitMs: 100 };
export const DEFAULT_SEQUENCES = 4;
export const DEFAULT_CONTEXT_SIZE = 2048;
export const DEFAULT_CACHE_ENTRIES = 1000;

/**
 * Threads when none are given: one core is left to the load generator (and the server's own JavaScript thread).
 *
 * Why not all cores: node-llama-cpp's prebuilt CPU binaries use ggml's own threadpool, whose threads spin at every
 * barrier of every graph (llama-server's build uses OpenMP, which backs off to sleeping). When anything else needs a
 * core, a spinning thread waits for one that is not running. Measured on a 2-core machine with other work on it,
 * single stream, tiny model, through this target: 1 thread 440-1900 tok/s; 2 threads 4-230 tok/s; 4 threads (node-
 * llama-cpp's default) 0.6-1.4 tok/s. llama-server (OpenMP) with -t 2 ran the same pipeline test in 5 s where this
 * target with 2 threads took 65-78 s.
 */
export function defaultThreads(cores: number = availableParallelism()): number {
  return Math.max(1, cores - 1);
}

function positiveInt(value: unknown, subject: string, example: string, min = 1): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new BadInputError(`must be an integer of at least ${min}, got ${JSON.stringify(value)}`, {
      subject,
      hint: example,
    });
  }
  return value;
}

/** Validates the options and fills in defaults. Throws BadInputError naming the field. */
export function resolveServerConfig(opts: InProcessTargetOptions): ServerConfig {
  if (typeof opts.modelPath !== "string" || opts.modelPath === "") {
    throw new BadInputError("no model given", { subject: "modelPath", hint: "--model ./models/my-model.Q4_K_M.gguf" });
  }
  const threads = opts.threads === undefined ? defaultThreads() : positiveInt(opts.threads, "threads", "threads: 4");
  const sequences =
    opts.sequences === undefined ? DEFAULT_SEQUENCES : positiveInt(opts.sequences, "sequences", "sequences: 4");
  const contextSize =
    opts.contextSize === undefined
      ? DEFAULT_CONTEXT_SIZE
      : positiveInt(opts.contextSize, "contextSize", "contextSize: 2048", 16);
  let batching: BatchingConfig | false = false;
  if (opts.batching === true) batching = { ...DEFAULT_BATCHING };
  else if (typeof opts.batching === "object" && opts.batching !== null) {
    batching = {
      maxBatchSize:
        opts.batching.maxBatchSize === undefined
          ? DEFAULT_BATCHING.maxBatchSize
          : positiveInt(opts.batching.maxBatchSize, "batching.maxBatchSize", "batching: { maxBatchSize: 8 }"),
      maxWaitMs:
        opts.batching.maxWaitMs === undefined
          ? DEFAULT_BATCHING.maxWaitMs
          : positiveInt(opts.batching.maxWaitMs, "batching.maxWaitMs", "batching: { maxWaitMs: 100 }", 0),
    };
  } else if (opts.batching !== undefined && opts.batching !== false) {
    throw new BadInputError(
      `must be true, false or { maxBatchSize, maxWaitMs }, got ${JSON.stringify(opts.batching)}`,
      {
        subject: "batching",
        hint: "batching: { maxBatchSize: 8, maxWaitMs: 100 }",
      },
    );
  }
  let responseCache: { maxEntries: number } | false = false;
  if (opts.responseCache === true) responseCache = { maxEntries: DEFAULT_CACHE_ENTRIES };
  else if (typeof opts.responseCache === "object" && opts.responseCache !== null) {
    responseCache = {
      maxEntries:
        opts.responseCache.maxEntries === undefined
          ? DEFAULT_CACHE_ENTRIES
          : positiveInt(
              opts.responseCache.maxEntries,
              "responseCache.maxEntries",
              "responseCache: { maxEntries: 1000 }",
            ),
    };
  } else if (opts.responseCache !== undefined && opts.responseCache !== false) {
    throw new BadInputError(`must be true, false or { maxEntries }, got ${JSON.stringify(opts.responseCache)}`, {
      subject: "responseCache",
      hint: "responseCache: true",
    });
  }
  return { modelPath: resolve(opts.modelPath), threads, sequences, contextSize, batching, responseCache };
}
