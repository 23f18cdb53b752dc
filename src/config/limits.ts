import { z } from "zod";

/**
 * Upper bounds on counts, durations and rates, each with its reason: a value past them is a typo (an extra zero) or
 * would exhaust the machine or the job, and accepting it would only fail later (or advise `target.sequences: 1e8`).
 */
export const LIMITS = {
  inFlight: { max: 4096, why: "tokengate opens one connection per request in flight" },
  requests: { max: 1_000_000, why: "every request is kept in memory for the analysis and written to records.ndjson" },
  trials: { max: 1000, why: "each trial runs the whole test again" },
  seconds: { max: 86_400, why: "a day; no CI job runs that long" },
  rate: { max: 100_000, why: "far more arrivals per second than one client process can schedule" },
  tokens: { max: 16_777_216, why: "longer than any model's context window (the longest are 10M tokens)" },
  timeoutMs: { max: 86_400_000, why: "a day; no CI job runs that long" },
  waitMs: { max: 3_600_000, why: "an hour; a server that is not up by then is not starting" },
  threads: { max: 1024, why: "more CPU threads than a machine has" },
  probes: { max: 1000, why: "each probe is a measured load step" },
} as const;
export type LimitName = keyof typeof LIMITS;
export const atMost = (name: LimitName) => `at most ${LIMITS[name].max.toLocaleString("en-US")}: ${LIMITS[name].why}`;
/** A positive integer count with its upper bound (min 0 with `zero`). */
export const count = (name: LimitName, zero = false) =>
  (zero ? z.number().int().min(0) : z.number().int().positive()).max(LIMITS[name].max, atMost(name));
/** A positive number (seconds, a rate) with its upper bound (min 0 with `zero`). */
export const amount = (name: LimitName, zero = false) =>
  (zero ? z.number().min(0) : z.number().positive()).max(LIMITS[name].max, atMost(name));
