import { nowNs } from "../../measure/clock.js";
import type { RequestRecord } from "../../measure/record.js";
import type { ArrivalProcess } from "./arrivals.js";
import { DEFAULT_SPIN_NS, Pacer, type PacerStats } from "./pacer.js";
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  type Job,
  type LoopBounds,
  type LoopOutcome,
  reasonText,
  type SendFn,
  type StopReason,
} from "./types.js";

/**
 * The open loop (k6 constant-arrival-rate, vLLM --request-rate, wrk2): requests arrive on a schedule that does not
 * wait for the server. Every request carries its intended start; the client's actual start minus that is the schedule
 * lag, and latencies measured from the intended start are the ones corrected for coordinated omission.
 *
 * One dispatcher walks the schedule on absolute intended times (pacer.ts): it wakes at the next intended time, then
 * starts every arrival that is due (catching up when it woke late, so the achieved rate never drifts below the
 * requested one). With a concurrency cap (`maxConcurrency`), an arrival that finds the cap full either waits in a FIFO
 * queue (`whenFull: "queue"`, vLLM's semaphore: it starts late and its lag shows the wait) or is dropped and counted
 * (`"drop"`, k6's dropped_iterations). Nothing is silently skipped: late and dropped arrivals are metrics.
 */
export interface OpenLoopOptions<T> extends LoopBounds {
  arrivals: ArrivalProcess;
  /** Bound on measured arrivals (in addition to, or instead of, durationMs). */
  requests?: number;
  /** Most requests in flight; default unbounded. */
  maxConcurrency?: number;
  /** What an arrival does when the cap is full. Default `queue`. */
  whenFull?: "queue" | "drop";
  pick: () => T;
  send: SendFn<T>;
  onRecord?: (record: RequestRecord) => void;
  /** How close to an intended time the dispatcher stops sleeping on a timer and spins (ns). Default 1 ms; 0: never. */
  spinNs?: number;
}

export interface ScheduleCounts {
  /** Measured arrivals the schedule produced (sent + dropped + unsent). */
  arrivals: number;
  /** Measured arrivals that were sent. */
  sent: number;
  /** Measured arrivals dropped because the concurrency cap was full (`whenFull: "drop"`). */
  dropped: number;
  /** Measured arrivals still queued behind the cap when the loop stopped: never sent. */
  unsent: number;
  /** Warm-up arrivals, and of those dropped or unsent. */
  warmupArrivals: number;
  warmupDropped: number;
}

export interface OpenLoopOutcome extends LoopOutcome {
  schedule: ScheduleCounts & {
    pattern: string;
    requestedRatePerS: number;
    /** Gamma shape of the gaps (1 Poisson, Infinity constant). */
    shape: number;
    maxConcurrency?: number;
    whenFull: "queue" | "drop";
    pacer: PacerStats;
  };
}

export async function runOpenLoop<T>(o: OpenLoopOptions<T>): Promise<OpenLoopOutcome> {
  if (o.durationMs === undefined && o.requests === undefined) {
    throw new RangeError("an open loop needs durationMs or requests (it would never end)");
  }
  if (o.maxConcurrency !== undefined && !(o.maxConcurrency >= 1)) {
    throw new RangeError(`maxConcurrency must be at least 1, got ${o.maxConcurrency}`);
  }
  const whenFull = o.whenFull ?? "queue";
  const drainTimeoutMs = o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const pacer = new Pacer(o.spinNs ?? DEFAULT_SPIN_NS);
  const inFlightCtl = new AbortController();
  const stopCtl = new AbortController();
  let stoppedBy: StopReason | undefined;
  let interruptReason: string | undefined;
  let fatal: unknown;
  const t0 = nowNs();
  let stopAtNs = t0;
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

  const counts: ScheduleCounts = { arrivals: 0, sent: 0, dropped: 0, unsent: 0, warmupArrivals: 0, warmupDropped: 0 };
  const records: RequestRecord[] = [];
  const pending = new Set<Promise<void>>();
  // FIFO of arrivals waiting for a free slot (array + head index: shift() is O(n) on large arrays).
  const queue: Job<T>[] = [];
  let queueHead = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let drainTimedOut = false;
  let cancelledAtDrain = 0;
  // After the schedule ends by its own bound, arrivals queued behind the cap have already arrived: they are sent as
  // slots free up, within the drain timeout. A stop or an interrupt leaves them unsent.
  let flushQueue = false;

  const launch = (job: Job<T>) => {
    inFlight++;
    if (inFlight > maxInFlight) maxInFlight = inFlight;
    if (job.measured) counts.sent++;
    const p: Promise<void> = o.send(job, inFlightCtl.signal).then(
      (record) => {
        inFlight--;
        pending.delete(p);
        records.push(record);
        if (drainTimedOut && record.errorClass === "cancelled") cancelledAtDrain++;
        o.onRecord?.(record);
        if (queueHead < queue.length && (!stopCtl.signal.aborted || flushQueue)) {
          const next = queue[queueHead]!;
          queue[queueHead++] = undefined as unknown as Job<T>;
          launch(next);
        }
      },
      (e: unknown) => {
        inFlight--;
        pending.delete(p);
        fatal ??= e;
        onInterrupt();
      },
    );
    pending.add(p);
  };

  const arrive = (job: Job<T>) => {
    if (o.maxConcurrency !== undefined && inFlight >= o.maxConcurrency) {
      if (whenFull === "drop") {
        if (job.measured) counts.dropped++;
        else counts.warmupDropped++;
        return;
      }
      queue.push(job);
      return;
    }
    launch(job);
  };

  const warmupEndNs = t0 + (o.warmupMs ?? 0) * 1e6;
  const warmupRequests = o.warmupRequests ?? 0;
  let measureStartNs: number | undefined;
  let endNs = Number.POSITIVE_INFINITY;
  const openWindow = (atNs: number) => {
    measureStartNs = atNs;
    if (o.durationMs !== undefined) endNs = atNs + o.durationMs * 1e6;
  };
  if (warmupRequests === 0) openWindow(warmupEndNs);

  let nextNs = t0;
  let index = 0;
  dispatch: while (!stopCtl.signal.aborted) {
    if (nextNs >= endNs) {
      stop("duration");
      break;
    }
    if (o.requests !== undefined && counts.arrivals >= o.requests) {
      stop("requests");
      break;
    }
    await pacer.until(nextNs, stopCtl.signal);
    if (stopCtl.signal.aborted) break;
    const now = nowNs();
    // Catch up: start every arrival that is due, each with its own intended time (its lag is measured, not hidden).
    while (nextNs <= now) {
      if (nextNs >= endNs || (o.requests !== undefined && counts.arrivals >= o.requests)) continue dispatch;
      const warm = index < warmupRequests || nextNs < warmupEndNs;
      if (!warm && measureStartNs === undefined) openWindow(nextNs);
      if (warm) counts.warmupArrivals++;
      else counts.arrivals++;
      arrive({ task: o.pick(), measured: !warm, intendedStartNs: nextNs });
      index++;
      nextNs += o.arrivals.nextGapNs();
      if (stopCtl.signal.aborted) break dispatch;
    }
  }

  // Graceful stop: in-flight requests drain (and the queue flushes after a natural end), bounded by the drain timeout;
  // arrivals still queued after that are never sent (counted).
  flushQueue = stoppedBy === "duration" || stoppedBy === "requests";
  const inFlightAtStop = inFlight + (flushQueue ? queue.length - queueHead : 0);
  const drainTimer = setTimeout(() => {
    drainTimedOut = true;
    flushQueue = false;
    inFlightCtl.abort(new Error(`drain timeout (${drainTimeoutMs} ms) passed`));
  }, drainTimeoutMs);
  const onInterruptDuringDrain = () => {
    flushQueue = false;
  };
  o.signal.addEventListener("abort", onInterruptDuringDrain, { once: true });
  while (pending.size > 0) await Promise.all([...pending]);
  o.signal.removeEventListener("abort", onInterruptDuringDrain);
  for (let i = queueHead; i < queue.length; i++) {
    if (queue[i]!.measured) counts.unsent++;
    else counts.warmupDropped++;
  }
  queue.length = 0;
  queueHead = 0;
  const drainMs = (nowNs() - stopAtNs) / 1e6;
  clearTimeout(drainTimer);
  o.signal.removeEventListener("abort", onInterrupt);
  o.stopSignal?.removeEventListener("abort", onStop);
  if (fatal !== undefined) throw fatal;

  const start = measureStartNs ?? stopAtNs;
  // The window is the schedule's: up to the end of the duration, the next arrival a count bound did not start, or the
  // moment a stop cut the schedule short.
  const scheduledEnd = stoppedBy === "duration" ? endNs : stoppedBy === "requests" ? nextNs : stopAtNs;
  const end = Math.max(start, Math.min(scheduledEnd, Number.isFinite(endNs) ? endNs : scheduledEnd));
  return {
    records,
    measureStartNs: start,
    measureEndNs: end,
    windowNs: end - start,
    stoppedBy: stoppedBy ?? "duration",
    ...(interruptReason === undefined ? {} : { interruptReason }),
    drain: { inFlightAtStop, cancelledAtDrain, drainMs, drainTimeoutMs },
    maxInFlight,
    schedule: {
      ...counts,
      pattern: o.arrivals.spec.pattern,
      requestedRatePerS: o.arrivals.spec.ratePerS,
      shape: o.arrivals.shape,
      ...(o.maxConcurrency === undefined ? {} : { maxConcurrency: o.maxConcurrency }),
      whenFull,
      pacer: pacer.stats,
    },
  };
}
