/**
 * One monotonic clock for every timestamp in a run: `process.hrtime.bigint()` relative to a process-wide origin,
 * as a plain number of nanoseconds (exact below 2^53 ns = 104 days) so records serialize to JSON.
 * Never use Date.now() for measurements: it is wall-clock, can jump, and has ms resolution.
 */
const originNs = process.hrtime.bigint();

export function nowNs(): number {
  return Number(process.hrtime.bigint() - originNs);
}

export const NS_PER_MS = 1e6;

export function nsToMs(ns: number): number {
  return ns / NS_PER_MS;
}
