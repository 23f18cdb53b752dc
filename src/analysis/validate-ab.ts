/**
 * Validation of the same-runner A/B gate (docs/verdicts.md "Same-runner A/B: validation"): from pools of real pairs
 * (run i of arm A and run i of arm B of `tokengate ab` folders, each run a freshly started server), judge many A/B
 * gates of n pairs as `tokengate ab` would (judgeAb) and count the verdicts.
 *
 * - A/A pairs (both arms the same configuration, `ab --aa`): a fail is a false fail, a warn a false warn.
 * - A/B pairs (a real slowdown made by configuration): fail is detection.
 * - A/A pairs with a shift applied to arm B's per-trial values (`shift`: +10% on latencies, -10% on rates): the
 *   detection of an exact 10% slowdown on the real noise of these pairs (the real slowdowns are not exactly 10%).
 * Subsets of n pairs are drawn from the pool: every subset when there are at most `maxGates`, else a seeded sample.
 * Subsets share pairs, so the rates are estimates from a pool of that many pairs, not from that many gates.
 * The minimum detectable effect is each gated metric's median `comparison.detectable` over the gates. Pure.
 */
import type { MetricResult, Results, VerdictLevel } from "../measure/results.js";
import type { PolicyInput } from "./policy.js";
import { resolvePolicy } from "./policy.js";
import { binomial, seededRandom } from "./stats.js";
import { judgeAb, summarize } from "./verdict.js";

export interface Pair {
  a: Results;
  b: Results;
  /** Where it came from: `aa-p2-1 pair 3`. */
  label: string;
}

export interface AbValidationInput {
  pairs: readonly Pair[];
  /** Pairs per gate. */
  n: number;
  /** Apply this slowdown to arm B (0.1 = 10% worse on every gated metric). Default 0: the pairs as measured. */
  shift?: number;
  maxGates?: number;
  seed?: number;
  policy?: PolicyInput;
}

export interface AbValidationReport {
  poolPairs: number;
  n: number;
  gates: number;
  /** Every subset was judged (true) or a seeded sample of them (false). */
  exhaustive: boolean;
  shift: number;
  /** Overall verdicts of the baseline comparison (targets and error rates left out). */
  counts: Record<VerdictLevel, number>;
  failRate: number;
  warnRate: number;
  warnOrFailRate: number;
  /** Per gated metric (`latency ttft_ms.p50`): median detectable change over the gates (fraction). */
  detectable: Record<string, number>;
  /** Per gated metric: median observed change over the gates. */
  change: Record<string, number>;
}

/** Arm B with its gated per-trial values made `shift` worse (a latency longer, a rate lower). */
export function shifted(run: Results, shift: number, gated: ReadonlySet<string>): Results {
  if (shift === 0) return run;
  const copy = structuredClone(run);
  for (const t of copy.tests) {
    for (const [key, m] of Object.entries(t.metrics) as Array<[string, MetricResult]>) {
      if (!gated.has(key)) continue;
      const f = m.better === "lower" ? 1 + shift : 1 / (1 + shift);
      m.trials = m.trials.map((s) => ({
        ...s,
        mean: s.mean * f,
        min: s.min * f,
        p50: s.p50 * f,
        p90: s.p90 * f,
        p95: s.p95 * f,
        p99: s.p99 * f,
        max: s.max * f,
        stddev: s.stddev * f,
      }));
      // Per-request histograms are left as measured: the per-request rank test is reported, never decided on.
    }
  }
  return copy;
}

function subsets(count: number, n: number, maxGates: number, seed: number): { picks: number[][]; exhaustive: boolean } {
  const total = binomial(count, n);
  if (total <= maxGates) {
    const picks: number[][] = [];
    const walk = (start: number, acc: number[]) => {
      if (acc.length === n) {
        picks.push([...acc]);
        return;
      }
      for (let i = start; i < count; i++) walk(i + 1, [...acc, i]);
    };
    walk(0, []);
    return { picks, exhaustive: true };
  }
  const random = seededRandom(seed);
  const seen = new Set<string>();
  const picks: number[][] = [];
  while (picks.length < maxGates) {
    const idx = [...Array(count).keys()];
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    const pick = idx.slice(0, n).sort((x, y) => x - y);
    const key = pick.join(",");
    if (seen.has(key)) continue;
    seen.add(key);
    picks.push(pick);
  }
  return { picks, exhaustive: false };
}

function median(v: number[]): number {
  if (v.length === 0) return Number.NaN;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function validateAb(input: AbValidationInput): AbValidationReport {
  const policy = resolvePolicy(input.policy);
  const shift = input.shift ?? 0;
  const gated = new Set(policy.gate.map((g) => g.metric));
  if (input.n < 2 || input.n > input.pairs.length) {
    throw new RangeError(`n must be from 2 to the pool's ${input.pairs.length} pairs, got ${input.n}`);
  }
  const { picks, exhaustive } = subsets(input.pairs.length, input.n, input.maxGates ?? 500, input.seed ?? 1);
  const counts: Record<VerdictLevel, number> = { pass: 0, warn: 0, fail: 0 };
  const detectable = new Map<string, number[]>();
  const change = new Map<string, number[]>();
  for (const pick of picks) {
    const chosen = pick.map((i) => input.pairs[i]!);
    const v = judgeAb({
      a: chosen.map((p) => p.a),
      b: chosen.map((p) => shifted(p.b, shift, gated)),
      policy,
      options: { interval: false, perRequest: false },
    });
    const baselineChecks = v.checks.filter((c) => c.source === "baseline");
    counts[summarize(baselineChecks).overall]++;
    for (const c of baselineChecks) {
      if (!c.comparison) continue;
      const key = `${c.test} ${c.metric}`;
      if (c.comparison.detectable !== undefined)
        detectable.set(key, [...(detectable.get(key) ?? []), c.comparison.detectable]);
      change.set(key, [...(change.get(key) ?? []), c.comparison.change]);
    }
  }
  const gates = picks.length;
  return {
    poolPairs: input.pairs.length,
    n: input.n,
    gates,
    exhaustive,
    shift,
    counts,
    failRate: counts.fail / gates,
    warnRate: counts.warn / gates,
    warnOrFailRate: (counts.warn + counts.fail) / gates,
    detectable: Object.fromEntries([...detectable].map(([k, v]) => [k, median(v)])),
    change: Object.fromEntries([...change].map(([k, v]) => [k, median(v)])),
  };
}
