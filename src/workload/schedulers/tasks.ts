import type { ApiKind } from "../../target/types.js";
import type { Rng } from "../../util/rng.js";

/**
 * Weighted tasks and think time with locust's semantics: a user picks its next task with probability weight / total
 * weight (`@task(3)` is three times as likely as `@task`), runs it, then waits `between(min, max)` seconds (uniform)
 * or a constant time before the next one. Pure and seeded.
 */
export interface LoadTask {
  /** Scenario name in records and results (e.g. `chat`). */
  name: string;
  /** Relative weight (locust `@task(weight)`), a positive integer or number. */
  weight: number;
  api: ApiKind;
  /** A fixed prompt (the seed's locustfile: "Hello world"), or undefined to synthesize `promptTokens` per request. */
  prompt?: string;
  /** Approximate prompt length when synthesizing prompts (distinct per request, so the prompt cache cannot help). */
  promptTokens: number;
  maxTokens: number;
}

/** Think time in seconds: locust's `constant(s)` or `between(min, max)`. */
export type ThinkTime = { kind: "constant"; seconds: number } | { kind: "between"; minS: number; maxS: number };

export const NO_THINK_TIME: ThinkTime = { kind: "constant", seconds: 0 };

/** `2` -> constant(2); `[1, 3]` -> between(1, 3). */
export function thinkTimeOf(spec: number | readonly [number, number] | undefined): ThinkTime {
  if (spec === undefined) return NO_THINK_TIME;
  if (typeof spec === "number") return { kind: "constant", seconds: spec };
  const [a, b] = spec;
  return { kind: "between", minS: Math.min(a, b), maxS: Math.max(a, b) };
}

/** One think-time draw, in milliseconds. */
export function drawThinkMs(t: ThinkTime, rng: Rng): number {
  if (t.kind === "constant") return t.seconds * 1000;
  return rng.uniform(t.minS, t.maxS) * 1000;
}

/** Mean think time (s), for planning. */
export function meanThinkS(t: ThinkTime): number {
  return t.kind === "constant" ? t.seconds : (t.minS + t.maxS) / 2;
}

/**
 * A weighted picker over tasks: cumulative weights and one uniform draw per pick (O(log n) by binary search; the task
 * lists are tiny, but a pick happens per request at up to thousands per second).
 */
export function createTaskPicker<T extends { weight: number }>(tasks: readonly T[], rng: Rng): () => T {
  if (tasks.length === 0) throw new RangeError("no tasks to pick from");
  const cumulative: number[] = [];
  let total = 0;
  for (const t of tasks) {
    if (!(t.weight > 0) || !Number.isFinite(t.weight))
      throw new RangeError(`task weight must be positive: ${t.weight}`);
    total += t.weight;
    cumulative.push(total);
  }
  if (tasks.length === 1) return () => tasks[0]!;
  return () => {
    const x = rng.next() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x < cumulative[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return tasks[lo]!;
  };
}
