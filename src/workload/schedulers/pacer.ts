import { setImmediate as nextTurn, setTimeout as sleepMs } from "node:timers/promises";
import { nowNs } from "../../measure/clock.js";

/**
 * Waiting until an absolute time on the run clock (process.hrtime), precisely.
 *
 * Why not just setTimeout: Node timers have 1 ms granularity, fire late by up to a millisecond or more under load, and
 * a loop of relative sleeps accumulates that error (a 2000 req/s schedule of 0.5 ms gaps cannot even be expressed).
 * So callers schedule against absolute intended times and catch up when late (drift-free: the achieved rate equals the
 * requested one even when each wake-up is late), and this module sleeps with a timer until `spinNs` before the target,
 * then yields turn by turn with setImmediate (I/O callbacks still run between turns) until the target passes. What is
 * left is a lag of tens of microseconds, which the open loop measures per request instead of assuming.
 *
 * The spin costs CPU only in the last `spinNs` of each wait; at rates whose gaps are below `spinNs` the loop spins
 * continuously. The time spent spinning is reported so the client self-check does not mistake it for work.
 */
export const DEFAULT_SPIN_NS = 1_000_000;

export interface PacerStats {
  /** Wall time spent in the setImmediate spin (ns); other callbacks ran in between, so this is an upper bound. */
  spinNs: number;
  /** Timer sleeps taken. */
  timerSleeps: number;
}

export class Pacer {
  readonly stats: PacerStats = { spinNs: 0, timerSleeps: 0 };

  constructor(private readonly spinNs = DEFAULT_SPIN_NS) {}

  /** Resolves at or just after `targetNs` (run clock), or as soon as `signal` fires. Never rejects. */
  async until(targetNs: number, signal?: AbortSignal): Promise<void> {
    let spinStart: number | undefined;
    let first = true;
    for (;;) {
      if (signal?.aborted) break;
      const now = nowNs();
      const remaining = targetNs - now;
      if (remaining <= 0) {
        // Behind schedule: still give the event loop one turn. Returning at once let a late open loop launch every
        // due arrival on microtasks alone, so no timer fired and no response was read for seconds
        // (bench/open-loop-starvation.ts reproduces it).
        if (first) await nextTurn();
        break;
      }
      first = false;
      if (remaining > this.spinNs) {
        if (spinStart !== undefined) {
          this.stats.spinNs += now - spinStart;
          spinStart = undefined;
        }
        this.stats.timerSleeps++;
        // Wake 1 ms early at the latest: timers fire late, never early, and the spin covers the rest.
        const ms = Math.max(1, Math.floor((remaining - this.spinNs) / 1e6));
        await sleepMs(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
      } else {
        spinStart ??= now;
        await nextTurn();
      }
    }
    if (spinStart !== undefined) this.stats.spinNs += nowNs() - spinStart;
  }
}

/** Sleeps `ms` milliseconds unless `signal` fires first (then resolves at once). Never rejects. */
export async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  await sleepMs(ms, undefined, { signal }).catch(() => undefined);
}

/** Resolves when `signal` fires (immediately if it has). */
export function whenAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}
