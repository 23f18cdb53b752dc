import type { Rng } from "../../util/rng.js";

/**
 * Open-loop arrival processes: the gaps between intended request starts. Pure and seeded, so a schedule is
 * reproducible and its statistics are testable without a clock.
 *
 * - constant: every gap is exactly 1/rate (k6 constant-arrival-rate, GuideLLM `constant`).
 * - poisson: exponential gaps with mean 1/rate (CV 1), memoryless arrivals of many independent users.
 * - gamma: gamma(shape k, scale 1/(rate k)) gaps, mean 1/rate and CV 1/sqrt(k) (vLLM's `--burstiness` is k:
 *   k < 1 is burstier than Poisson, k > 1 smoother, k = 1 is Poisson). `cv` is the other way to say it: k = 1/cv².
 */
export type ArrivalPattern = "constant" | "poisson" | "gamma";

export interface ArrivalSpec {
  pattern: ArrivalPattern;
  /** Mean arrivals per second. */
  ratePerS: number;
  /** gamma only: the shape k (vLLM's burstiness). Default 1 (Poisson). */
  burstiness?: number;
  /** gamma only: coefficient of variation of the gaps; overrides burstiness (k = 1/cv²). */
  cv?: number;
}

/** A stream of inter-arrival gaps in nanoseconds. */
export interface ArrivalProcess {
  readonly spec: ArrivalSpec;
  /** The gamma shape actually used (1 for Poisson, Infinity for constant). */
  readonly shape: number;
  /** The next gap (ns). */
  nextGapNs(): number;
}

const NS_PER_S = 1e9;

export function gammaShape(spec: ArrivalSpec): number {
  if (spec.pattern === "constant") return Number.POSITIVE_INFINITY;
  if (spec.pattern === "poisson") return 1;
  if (spec.cv !== undefined) return 1 / (spec.cv * spec.cv);
  return spec.burstiness ?? 1;
}

export function createArrivals(spec: ArrivalSpec, rng: Rng): ArrivalProcess {
  if (!(spec.ratePerS > 0) || !Number.isFinite(spec.ratePerS)) {
    throw new RangeError(`arrival rate must be a positive number, got ${spec.ratePerS}`);
  }
  const meanNs = NS_PER_S / spec.ratePerS;
  const shape = gammaShape(spec);
  if (!(shape > 0)) throw new RangeError(`gamma shape must be positive, got ${shape}`);
  let nextGapNs: () => number;
  if (spec.pattern === "constant") nextGapNs = () => meanNs;
  else if (shape === 1) nextGapNs = () => rng.exponential(1) * meanNs;
  else nextGapNs = () => rng.gamma(shape, 1 / shape) * meanNs;
  return { spec, shape, nextGapNs };
}

/**
 * The first `n` intended start offsets (ns from the schedule's origin); the first arrival is at 0. For tests and for
 * planning; the open loop draws gaps lazily.
 */
export function arrivalOffsetsNs(process: ArrivalProcess, n: number): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    out.push(t);
    t += process.nextGapNs();
  }
  return out;
}
