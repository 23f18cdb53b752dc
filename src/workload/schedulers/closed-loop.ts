import { nowNs } from "../../measure/clock.js";
import type { RequestRecord } from "../../measure/record.js";
import type { Rng } from "../../util/rng.js";
import { Pacer, sleepUnlessAborted, whenAborted } from "./pacer.js";
import { drawThinkMs, NO_THINK_TIME, type ThinkTime } from "./tasks.js";
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  type LoopBounds,
  type LoopOutcome,
  reasonText,
  type SendFn,
  type StopReason,
} from "./types.js";

/**
 * The closed loop (locust users, k6 constant-vus / per-vu-iterations): N virtual users, each sending one request,
 * waiting for its response, thinking, and sending the next. The load is the number of users; the server's speed sets
 * the request rate (so a slow server gets fewer requests: coordinated omission by design. Use the open loop when the
 * arrival rate must not depend on the server).
 *
 * Warm-up runs at the same concurrency (the same users, first `warmupMs` and/or `warmupRequests`, records flagged
 * unmeasured), then the measured window runs for `durationMs`, with no gap in between. Stopping has two distinct
 * moments: a graceful stop (duration over, iterations done, or `stopSignal`) stops starting requests and lets in-flight
 * ones finish within `drainTimeoutMs` (then cancels them); an interrupt (`signal`) cancels in-flight requests at once.
 */
export interface ClosedLoopOptions<T> extends LoopBounds {
  /** Virtual users (the concurrency). */
  users: number;
  /** Users started per second (locust's spawn rate). Default: all at once. */
  spawnRatePerS?: number;
  /** Requests per user (k6 per-vu-iterations). Default: unbounded (then durationMs is required). */
  iterations?: number;
  /** Picks the next task for a user (weighted, see tasks.ts). */
  pick: () => T;
  /** Wait after each request of a user. Default: none (back-to-back, the seed's load test). */
  thinkTime?: ThinkTime;
  /** Draws think times. */
  rng: Rng;
  send: SendFn<T>;
  /** Called as each record arrives (progress). */
  onRecord?: (record: RequestRecord) => void;
  /**
   * Keep every record in the outcome (default true: the tests summarize them). false: records go to `onRecord` only,
   * and the outcome's list stays empty, so a soak of millions of requests holds nothing per request (bench/soak.ts).
   */
  keepRecords?: boolean;
}

export async function runClosedLoop<T>(o: ClosedLoopOptions<T>): Promise<LoopOutcome> {
  if (!(o.users >= 1)) throw new RangeError(`users must be at least 1, got ${o.users}`);
  if (o.durationMs === undefined && o.iterations === undefined) {
    throw new RangeError("a closed loop needs durationMs or iterations (it would never end)");
  }
  const think = o.thinkTime ?? NO_THINK_TIME;
  const drainTimeoutMs = o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const t0 = nowNs();
  const inFlightCtl = new AbortController();
  const stopCtl = new AbortController();
  let stoppedBy: StopReason | undefined;
  let stopAtNs = t0;
  let interruptReason: string | undefined;
  let fatal: unknown;
  const stop = (why: StopReason) => {
    if (stopCtl.signal.aborted) return;
    stoppedBy = why;
    stopAtNs = nowNs();
    stopCtl.abort(why);
  };
  const onInterrupt = () => {
    interruptReason = reasonText(o.signal.reason);
    stop("interrupted");
    inFlightCtl.abort(o.signal.reason);
  };
  const onStop = () => stop("stopped");
  if (o.signal.aborted) onInterrupt();
  else o.signal.addEventListener("abort", onInterrupt, { once: true });
  if (o.stopSignal?.aborted) onStop();
  else o.stopSignal?.addEventListener("abort", onStop, { once: true });

  const warmupEndNs = t0 + (o.warmupMs ?? 0) * 1e6;
  const warmupRequests = o.warmupRequests ?? 0;
  let measureStartNs: number | undefined;
  let endTimer: NodeJS.Timeout | undefined;
  const openWindow = (atNs: number) => {
    measureStartNs = atNs;
    if (o.durationMs !== undefined) {
      // Timer precision (~1 ms) is plenty here: the window's end is the measured stop time, not the timer's.
      const delayMs = (atNs + o.durationMs * 1e6 - nowNs()) / 1e6;
      endTimer = setTimeout(() => stop("duration"), Math.max(0, delayMs));
    }
  };
  if (warmupRequests === 0) openWindow(warmupEndNs);

  const records: RequestRecord[] = [];
  const pacer = new Pacer();
  let started = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let drainTimedOut = false;
  let cancelledAtDrain = 0;

  const user = async (u: number) => {
    if (o.spawnRatePerS && u > 0) await pacer.until(t0 + (u / o.spawnRatePerS) * 1e9, stopCtl.signal);
    for (let it = 0; o.iterations === undefined || it < o.iterations; it++) {
      if (stopCtl.signal.aborted) return;
      const now = nowNs();
      const measured = started >= warmupRequests && now >= warmupEndNs;
      started++;
      if (measured && measureStartNs === undefined) openWindow(now);
      inFlight++;
      if (inFlight > maxInFlight) maxInFlight = inFlight;
      let record: RequestRecord;
      try {
        record = await o.send({ task: o.pick(), measured, user: u, iteration: it }, inFlightCtl.signal);
      } catch (e) {
        // A sender never throws for request failures; this is a bug or a disk error: stop everything, rethrow below.
        fatal ??= e;
        onInterrupt();
        return;
      } finally {
        inFlight--;
      }
      if (o.keepRecords !== false) records.push(record);
      if (drainTimedOut && record.errorClass === "cancelled") cancelledAtDrain++;
      o.onRecord?.(record);
      if (o.iterations !== undefined && it === o.iterations - 1) return;
      const thinkMs = drawThinkMs(think, o.rng);
      if (thinkMs > 0) await sleepUnlessAborted(thinkMs, stopCtl.signal);
    }
  };

  const users = Promise.all(Array.from({ length: o.users }, (_, u) => user(u)));
  await Promise.race([users, whenAborted(stopCtl.signal)]);
  stop("iterations"); // no-op when already stopped: every user finished its iterations otherwise
  const inFlightAtStop = inFlight;
  const drainTimer = setTimeout(() => {
    drainTimedOut = true;
    inFlightCtl.abort(new Error(`drain timeout (${drainTimeoutMs} ms) passed`));
  }, drainTimeoutMs);
  await users;
  const drainMs = (nowNs() - stopAtNs) / 1e6;
  clearTimeout(drainTimer);
  clearTimeout(endTimer);
  o.signal.removeEventListener("abort", onInterrupt);
  o.stopSignal?.removeEventListener("abort", onStop);
  if (fatal !== undefined) throw fatal;

  const start = measureStartNs ?? stopAtNs;
  const end = Math.max(start, stopAtNs);
  return {
    records,
    measureStartNs: start,
    measureEndNs: end,
    windowNs: end - start,
    stoppedBy: stoppedBy ?? "iterations",
    ...(interruptReason === undefined ? {} : { interruptReason }),
    drain: { inFlightAtStop, cancelledAtDrain, drainMs, drainTimeoutMs },
    maxInFlight,
  };
}
