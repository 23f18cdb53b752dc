import type { ApiKind } from "../target/types.js";

/** Where an output or prompt token count came from, best first. `chunks` is a flagged last resort. */
export type TokenCountSource = "usage" | "timings" | "tokens_predicted" | "chunks" | "none";

export type ErrorClass = "connect" | "http" | "timeout" | "stream" | "parse" | "cancelled" | "shortfall";

/** llama-server's per-request `timings` object (shared/reference/llama-server). */
export interface ServerTimings {
  cache_n?: number;
  prompt_n?: number;
  prompt_ms?: number;
  prompt_per_second?: number;
  predicted_n?: number;
  predicted_ms?: number;
  predicted_per_second?: number;
  draft_n?: number;
  draft_n_accepted?: number;
}

/**
 * One record per request, errors as data. All times are nanoseconds on one monotonic clock
 * (`process.hrtime.bigint()`), stored as numbers relative to the run's time origin so they survive JSON.
 * Request start is the moment the request is handed to the socket.
 */
export interface RequestRecord {
  id: number;
  test: string;
  /** Scenario/task name within the test (e.g. a prompt length, a stress task). */
  scenario: string;
  api: ApiKind;
  /** Trial index for repeated trials; 0 otherwise. */
  trial: number;
  /** Open loop: when the schedule wanted it sent. Equals startNs in closed loops. */
  intendedStartNs: number;
  /**
   * Sent by an open-loop schedule: intendedStartNs is the schedule's time, so schedule lag and latencies corrected for
   * coordinated omission (measured from the intended start) are computed for it. Absent in closed loops.
   */
  openLoop?: boolean;
  startNs: number;
  firstByteNs?: number;
  firstTokenNs?: number;
  endNs: number;
  /** Times of each content event (ns), for ITL. */
  contentEventNs: number[];
  /** Whether the request fell in the measured window (not warm-up, not drain). */
  measured: boolean;
  promptTokens?: number;
  promptTokensSource: TokenCountSource;
  outputTokens?: number;
  outputTokensSource: TokenCountSource;
  /** max_tokens asked for (fixed output length). */
  requestedOutputTokens: number;
  serverTimings?: ServerTimings;
  /** Prompt tokens the server reused from its cache. */
  cachedTokens?: number;
  status: number;
  ok: boolean;
  errorClass?: ErrorClass;
  errorMessage?: string;
  /** Sent twice: the first attempt's connection was closed before any response byte (keep-alive race). */
  retried?: boolean;
  /** The stream ended with fewer output tokens than asked. Counted separately; the request itself succeeded. */
  shortfall?: number;
}
