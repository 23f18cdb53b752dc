import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { nowNs } from "./clock.js";

/**
 * The client checks itself while it drives load: if tokengate's own event loop is late or its process is using a
 * whole core, then timestamps are taken late and requests are started late, and what looks like a slow server may be
 * a slow client. Measured with perf_hooks.monitorEventLoopDelay (libuv timer lateness, the standard Node signal) and
 * process.cpuUsage (user + system time of the whole process: the in-process model runs in a forked child, so its work
 * is not counted here).
 *
 * Verdict: the client was the bottleneck when the event loop's p99 delay exceeds `eventLoopP99Ms`, or when the
 * process used more than `cpuCoreFraction` of one core for work other than the open loop's deliberate spin-wait
 * (pacer.ts: it yields to I/O between turns, so it keeps a core busy without delaying anything).
 */
export interface SelfCheckLimits {
  /** Event-loop delay p99 above this (ms) means callbacks (timestamps, sends) ran late. Default 20. */
  eventLoopP99Ms: number;
  /** CPU time / wall time of the process above this means one core is saturated. Default 0.9. */
  cpuCoreFraction: number;
}

export const DEFAULT_SELF_CHECK_LIMITS: SelfCheckLimits = { eventLoopP99Ms: 20, cpuCoreFraction: 0.9 };

export interface SelfCheckResult {
  wallS: number;
  /** Process CPU (user + system) over the window, seconds. */
  cpuS: number;
  /** cpuS / wallS: 1.0 is one full core. */
  cpuCoreFraction: number;
  /** Time the open-loop pacer spent spin-waiting (an upper bound on CPU it burned while idle), seconds. */
  spinS: number;
  /** Event-loop delay beyond the monitor's resolution, ms. */
  eventLoopDelayMs: { mean: number; p50: number; p99: number; max: number };
  /** True when the client, not the server, limited the measurement. */
  clientBound: boolean;
  /** Why (empty when not client-bound). */
  reasons: string[];
  limits: SelfCheckLimits;
}

export interface SelfCheck {
  /** Adds time the pacer spent spinning (ns), so it is not read as client work. */
  addSpinNs(ns: number): void;
  /** Stops measuring and returns the result (idempotent: later calls return the same result). */
  stop(): SelfCheckResult;
}

/** Resolution of the event-loop delay sampler (ms): small enough to see 20 ms stalls, cheap enough to leave on. */
const RESOLUTION_MS = 10;

export function startSelfCheck(limits: Partial<SelfCheckLimits> = {}): SelfCheck {
  const lim: SelfCheckLimits = { ...DEFAULT_SELF_CHECK_LIMITS, ...limits };
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  const cpu0 = process.cpuUsage();
  const t0 = nowNs();
  let spinNs = 0;
  let result: SelfCheckResult | undefined;
  return {
    addSpinNs(ns) {
      spinNs += ns;
    },
    stop() {
      if (result) return result;
      histogram.disable();
      const wallS = (nowNs() - t0) / 1e9;
      const d = process.cpuUsage(cpu0);
      const cpuS = (d.user + d.system) / 1e6;
      // The histogram is in ns; with no samples (a window shorter than the resolution) its fields are NaN or huge.
      const has = histogram.count > 0;
      const ms = (ns: number) => (has && Number.isFinite(ns) ? ns / 1e6 : 0);
      const eventLoopDelayMs = {
        mean: ms(histogram.mean),
        p50: ms(histogram.percentile(50)),
        p99: ms(histogram.percentile(99)),
        max: ms(histogram.max),
      };
      result = judgeSelfCheck({ wallS, cpuS, spinS: spinNs / 1e9, eventLoopDelayMs }, lim);
      return result;
    },
  };
}

/** The verdict part, pure (tested on its own). */
export function judgeSelfCheck(
  m: { wallS: number; cpuS: number; spinS: number; eventLoopDelayMs: SelfCheckResult["eventLoopDelayMs"] },
  limits: SelfCheckLimits = DEFAULT_SELF_CHECK_LIMITS,
): SelfCheckResult {
  const cpuCoreFraction = m.wallS > 0 ? m.cpuS / m.wallS : 0;
  const workFraction = m.wallS > 0 ? Math.max(0, m.cpuS - m.spinS) / m.wallS : 0;
  const reasons: string[] = [];
  if (m.eventLoopDelayMs.p99 > limits.eventLoopP99Ms) {
    const late = `tokengate's event loop ran up to ${m.eventLoopDelayMs.p99.toFixed(1)} ms late (p99 > ${limits.eventLoopP99Ms} ms)`;
    // Late with little work of its own: the process waited for a CPU (other processes, or the server on the same cores).
    reasons.push(
      workFraction < 0.5
        ? `${late} while using ${(100 * workFraction).toFixed(0)}% of a core: the machine was busy (other processes or the server took the CPU), so timestamps and sends were delayed`
        : `${late}: its own work delayed timestamps and sends`,
    );
  }
  if (workFraction > limits.cpuCoreFraction) {
    reasons.push(
      `tokengate used ${(100 * workFraction).toFixed(0)}% of a CPU core (> ${(100 * limits.cpuCoreFraction).toFixed(0)}%): the client was CPU-bound`,
    );
  }
  return {
    wallS: m.wallS,
    cpuS: m.cpuS,
    cpuCoreFraction,
    spinS: m.spinS,
    eventLoopDelayMs: m.eventLoopDelayMs,
    clientBound: reasons.length > 0,
    reasons,
    limits,
  };
}

/** Several windows' self-checks as one (e.g. a test's steps): sums and worst cases. */
export function mergeSelfChecks(checks: SelfCheckResult[]): SelfCheckResult | undefined {
  if (checks.length === 0) return undefined;
  const wallS = checks.reduce((s, c) => s + c.wallS, 0);
  const worst = (k: keyof SelfCheckResult["eventLoopDelayMs"]) => Math.max(...checks.map((c) => c.eventLoopDelayMs[k]));
  const merged = judgeSelfCheck(
    {
      wallS,
      cpuS: checks.reduce((s, c) => s + c.cpuS, 0),
      spinS: checks.reduce((s, c) => s + c.spinS, 0),
      eventLoopDelayMs: {
        mean: wallS > 0 ? checks.reduce((s, c) => s + c.eventLoopDelayMs.mean * c.wallS, 0) / wallS : 0,
        p50: worst("p50"),
        p99: worst("p99"),
        max: worst("max"),
      },
    },
    checks[0]!.limits,
  );
  // A single client-bound window is worth saying even when the whole test's averages look fine.
  const bound = checks.filter((c) => c.clientBound);
  if (bound.length > 0 && checks.length > 1) {
    merged.reasons.push(
      `${bound.length} of ${checks.length} load steps were client-bound (first: ${bound[0]!.reasons[0]})`,
    );
  }
  merged.clientBound = merged.reasons.length > 0;
  return merged;
}
