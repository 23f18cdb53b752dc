import type { RequestRecord } from "../../measure/record.js";

/**
 * What a scheduler hands to its sender: which task, whether the request counts (warm-up does not), and in open loops
 * when the schedule wanted it sent. The sender builds the request, streams it, writes the record and returns it; it
 * never throws for request-level failures (StreamClient's contract), and cancels when `signal` fires.
 */
export interface Job<T> {
  task: T;
  measured: boolean;
  /** Open loop: intended start on the run clock (ns). Undefined in closed loops (intended = actual start). */
  intendedStartNs?: number;
  /** Closed loop: the virtual user and its iteration. */
  user?: number;
  iteration?: number;
}

export type SendFn<T> = (job: Job<T>, signal: AbortSignal) => Promise<RequestRecord>;

/**
 * Why a loop stopped starting requests:
 * - `duration`: the measured window ended (graceful: in-flight requests were drained);
 * - `requests` / `iterations`: the count bound was reached (graceful);
 * - `stopped`: the caller asked for a graceful stop (e.g. a ramp step saw its SLO breached);
 * - `interrupted`: the run's signal fired (server died, user pressed Ctrl-C): in-flight requests were cancelled.
 */
export type StopReason = "duration" | "requests" | "iterations" | "stopped" | "interrupted";

/** Bounds on the stop itself: what the drain did. */
export interface DrainStats {
  /** Requests in flight when the loop stopped starting new ones. */
  inFlightAtStop: number;
  /** Of those, cancelled because the drain timeout passed (their records say `cancelled`). */
  cancelledAtDrain: number;
  /** Time from stop to the last in-flight request settling (ms). */
  drainMs: number;
  /** The drain timeout that applied (ms). */
  drainTimeoutMs: number;
}

export interface LoopOutcome {
  /** Every record the loop produced, warm-up included (flagged `measured: false`), in completion order. */
  records: RequestRecord[];
  /** Run-clock time the measured window opened and closed (ns). */
  measureStartNs: number;
  measureEndNs: number;
  /** measureEndNs - measureStartNs: the denominator of the loop's rates. */
  windowNs: number;
  stoppedBy: StopReason;
  /** The interrupt's reason, when interrupted. */
  interruptReason?: string;
  drain: DrainStats;
  /** Most requests in flight at once. */
  maxInFlight: number;
}

/** Common bounds of both loops. */
export interface LoopBounds {
  /** Measured window length (ms) after warm-up. At least one of durationMs / a count bound is required. */
  durationMs?: number;
  /** Warm-up before the measured window: a duration (ms) and/or a number of requests, run at the loop's own load. */
  warmupMs?: number;
  warmupRequests?: number;
  /** After a graceful stop, in-flight requests get this long to finish before they are cancelled. Default 30 000. */
  drainTimeoutMs?: number;
  /** Interrupt: cancel everything in flight and return at once (the run's signal). */
  signal: AbortSignal;
  /** Graceful stop: stop starting requests, drain what is in flight (bounded by drainTimeoutMs). */
  stopSignal?: AbortSignal;
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export function reasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return String(reason ?? "aborted");
}
