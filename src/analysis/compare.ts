/**
 * Baseline comparison, metric by metric: per-trial values of the gated statistic on both sides, a one-sided rank test
 * in the metric's worse direction, a bootstrap interval of the ratio of medians, Holm across the family, then the
 * decision table of docs/verdicts.md. Pure: results in, checks out.
 */
import { decodeHistogram } from "../measure/histogram.js";
import type { Better, Check, CheckComparison, MetricResult, Results, TestResult } from "../measure/results.js";
import { checkLabel, formatChange, formatP, formatPercent, type Stat } from "./format.js";
import type { Policy } from "./policy.js";
import {
  bootstrapMedianRatio,
  holmAdjust,
  mannWhitney,
  type RankTestResult,
  type RatioInterval,
  seededRandom,
  trialsNeeded,
} from "./stats.js";

/** Everything measured about one gated metric of one test, before the family-wide correction. */
export interface MetricEvidence {
  test: string;
  metric: string;
  stat: Stat;
  /** `ttft p95`. */
  label: string;
  unit: string;
  better: Better;
  baselineValues: number[];
  candidateValues: number[];
  baselineMedian: number;
  candidateMedian: number;
  /** median(candidate) / median(baseline) - 1: +0.14 is 14% higher, whatever "better" is. */
  change: number;
  /** The change in the worse direction: positive is a regression (slower latency, lower throughput). */
  worse: number;
  /** Bootstrap interval of the ratio of medians; absent with fewer than 2 values on a side. */
  ci?: RatioInterval;
  /** One-sided rank test on per-trial values (alternative: the candidate is worse); absent below minTrials. */
  rank?: RankTestResult;
  /** One-sided rank test on per-request samples (pooled over trials): supporting evidence only, see docs. */
  requestRank?: RankTestResult;
}

export interface CompareOptions {
  /** Also run the per-request rank test from the HDR histograms (default true). The validation harness turns it off. */
  perRequest?: boolean;
}

/** Gathers the evidence for one metric. Undefined when neither side measured it. */
export function gatherEvidence(
  testName: string,
  metricKey: string,
  stat: Stat,
  base: MetricResult,
  cand: MetricResult,
  policy: Policy,
  options: CompareOptions = {},
): MetricEvidence {
  const better = cand.better ?? base.better;
  const x = trialValues(base, stat);
  const y = trialValues(cand, stat);
  const aggregate = cand.histogram === undefined && base.histogram === undefined;
  const bm = medianOf(x);
  const cm = medianOf(y);
  const ratio = bm === 0 ? (cm === 0 ? 1 : Number.POSITIVE_INFINITY) : cm / bm;
  const change = ratio - 1;
  const ev: MetricEvidence = {
    test: testName,
    metric: metricKey,
    stat,
    label: checkLabel(metricKey, stat, aggregate),
    unit: cand.unit || base.unit,
    better,
    baselineValues: x,
    candidateValues: y,
    baselineMedian: bm,
    candidateMedian: cm,
    change,
    worse: better === "lower" ? change : -change,
  };
  if (x.length >= 2 && y.length >= 2 && bm > 0) {
    ev.ci = bootstrapMedianRatio(x, y, {
      resamples: policy.bootstrapResamples,
      level: policy.ciLevel,
      random: seededRandom(`${policy.seed}:${testName}:${metricKey}.${stat}`),
    });
  }
  const alternative = better === "lower" ? "greater" : "less";
  if (x.length >= policy.minTrials && y.length >= policy.minTrials) {
    ev.rank = mannWhitney(x, y, alternative);
  }
  if (options.perRequest !== false && base.histogram && cand.histogram) {
    const xs = requestSamples(base.histogram);
    const ys = requestSamples(cand.histogram);
    if (xs && ys && xs.length > 0 && ys.length > 0) ev.requestRank = mannWhitney(xs, ys, alternative, "normal");
  }
  return ev;
}

function trialValues(m: MetricResult, stat: Stat): number[] {
  return (m.trials ?? []).map((t) => t[stat]).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
}

function medianOf(v: readonly number[]): number {
  if (v.length === 0) return Number.NaN;
  const s = [...v].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Largest per-request sample rebuilt from a histogram; above it counts are thinned in proportion. */
const MAX_REQUEST_SAMPLES = 200_000;

/**
 * Per-request values rebuilt from an encoded HDR histogram (src/measure/histogram.ts's decodeHistogram). Values are
 * in the histogram's integer scale: fine for a rank test, which only needs their order. Undefined if it cannot be
 * decoded (an old or foreign encoding): the per-request path is then skipped, never guessed.
 */
export function requestSamples(encoded: string): number[] | undefined {
  let h: ReturnType<typeof decodeHistogram>;
  try {
    h = decodeHistogram(encoded);
  } catch {
    return undefined;
  }
  const total = h.totalCount;
  if (!total) return [];
  const thin = total > MAX_REQUEST_SAMPLES ? MAX_REQUEST_SAMPLES / total : 1;
  const out: number[] = [];
  // JS histograms (what histogram.ts builds) expose every recorded value with its count; the WASM ones only
  // percentiles, so fall back to sampling the quantile function evenly.
  const it = (
    h as unknown as {
      recordedValuesIterator?: {
        reset(): void;
        hasNext(): boolean;
        next(): { valueIteratedTo: number; countAtValueIteratedTo: number };
      };
    }
  ).recordedValuesIterator;
  if (it) {
    it.reset();
    while (it.hasNext()) {
      const v = it.next();
      const n = Math.round(v.countAtValueIteratedTo * thin);
      for (let i = 0; i < n; i++) out.push(v.valueIteratedTo);
    }
    return out;
  }
  const n = Math.min(total, 10_000);
  for (let i = 0; i < n; i++) out.push(h.getValueAtPercentile((100 * (i + 0.5)) / n));
  return out;
}

/** Holm family key of a piece of evidence. */
function familyOf(e: MetricEvidence, policy: Policy): string {
  return policy.holmFamily === "run" ? "run" : e.test;
}

/**
 * Turns evidence into checks: Holm across each family (only metrics that were tested count in the family), then the
 * decision table.
 */
export function decideAll(evidence: readonly MetricEvidence[], policy: Policy): Check[] {
  const families = new Map<string, MetricEvidence[]>();
  for (const e of evidence) {
    if (!e.rank) continue;
    const k = familyOf(e, policy);
    families.set(k, [...(families.get(k) ?? []), e]);
  }
  const adjusted = new Map<MetricEvidence, { p: number; m: number }>();
  for (const members of families.values()) {
    const ps = holmAdjust(members.map((e) => e.rank!.pValue));
    for (const [i, e] of members.entries()) adjusted.set(e, { p: ps[i]!, m: members.length });
  }
  return evidence.map((e) => decide(e, policy, adjusted.get(e)));
}

/** The decision table (docs/verdicts.md "How a metric is judged"). */
export function decide(e: MetricEvidence, policy: Policy, holm?: { p: number; m: number }): Check {
  const comparison: CheckComparison = {
    change: e.change,
    trials: { baseline: e.baselineValues.length, candidate: e.candidateValues.length },
  };
  if (e.ci) {
    comparison.ciLow = e.ci.low - 1;
    comparison.ciHigh = e.ci.high - 1;
    comparison.ciLevel = e.ci.level;
  }
  if (e.rank) comparison.pValue = e.rank.pValue;
  if (holm) comparison.pAdjusted = holm.p;
  if (e.requestRank) comparison.requestPValue = e.requestRank.pValue;
  const base = {
    test: e.test,
    metric: `${e.metric}.${e.stat}`,
    source: "baseline" as const,
    value: e.candidateMedian,
    reference: e.baselineMedian,
    comparison,
  };
  const check = (verdict: Check["verdict"], reason: string): Check => ({ ...base, verdict, reason });
  const nb = e.baselineValues.length;
  const nc = e.candidateValues.length;

  if (!Number.isFinite(e.baselineMedian) || !Number.isFinite(e.candidateMedian)) {
    const side = !Number.isFinite(e.candidateMedian) ? "this run" : "the baseline";
    return check("warn", `${e.label}: no value in ${side}; cannot compare`);
  }
  const ci = e.ci
    ? ` [${formatPercent(e.ci.level)} CI ${formatChange(e.ci.low - 1)}..${formatChange(e.ci.high - 1)}]`
    : "";
  const head = `${e.label} ${formatChange(e.change)}${ci}`;
  const trials = `${nb} vs ${nc} trials`;
  const requestNote = e.requestRank
    ? `; per-request rank test ${formatP(e.requestRank.pValue)} (ignores run-to-run noise)`
    : "";

  if (!e.rank || !holm) {
    // Too few trials for the rank test: a regression-sized change is inconclusive, never a silent pass.
    const more = policy.minTrials - Math.min(nb, nc);
    if (e.worse >= policy.warn) {
      comparison.inconclusive = true;
      comparison.moreTrials = more;
      return check(
        "warn",
        `${head} inconclusive: ${more} more trial${more === 1 ? "" : "s"} (${trials}, need ${policy.minTrials})${requestNote}`,
      );
    }
    return check("pass", `${head} below warn ${formatPercent(policy.warn)} (only ${trials}: not tested)`);
  }

  const p = `${formatP(holm.p)}${holm.m > 1 ? " Holm" : ""}`;
  if (e.worse < policy.noiseFloor) {
    if (e.worse <= -policy.noiseFloor) return check("pass", `${head} better`);
    return check("pass", `${head} within noise floor ${formatPercent(policy.noiseFloor)}`);
  }
  const significant = holm.p <= policy.alpha;
  if (significant && e.worse >= policy.fail) {
    return check("fail", `${head} ${beyond("fail", policy.fail, e.better)} (${trials}, ${p})`);
  }
  if (significant && e.worse >= policy.warn) {
    return check("warn", `${head} ${beyond("warn", policy.warn, e.better)} (${trials}, ${p})`);
  }
  if (e.worse >= policy.warn) {
    const need = trialsNeeded(e.baselineValues, e.candidateValues, {
      alphaEach: policy.alpha / holm.m,
      minTrials: policy.minTrials,
    });
    const more = need.perSide - Math.min(nb, nc);
    comparison.inconclusive = true;
    const what =
      !Number.isFinite(more) || more > 50
        ? "over 50 more trials (the change is within this runner's noise)"
        : `${Math.max(1, more)} more trial${Math.max(1, more) === 1 ? "" : "s"}`;
    if (Number.isFinite(more) && more <= 50) comparison.moreTrials = Math.max(1, more);
    return check(
      "warn",
      `${head} inconclusive: ${what} (${p}, needs <= ${policy.alpha}${need.limitedBy === "rank-test resolution" ? `; ${trials} cannot go lower` : ""})`,
    );
  }
  return check("pass", `${head} below warn ${formatPercent(policy.warn)}`);
}

/** `above fail 10%` for lower-is-better metrics, `below fail -10%` for higher-is-better ones. */
function beyond(level: "warn" | "fail", threshold: number, better: Better): string {
  return better === "lower"
    ? `above ${level} ${formatPercent(threshold)}`
    : `below ${level} -${formatPercent(threshold)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Test-level compatibility

/** Why two results of one test name cannot be compared, or undefined when they can. */
export function testDifference(a: TestResult, b: TestResult): string | undefined {
  if (a.kind !== b.kind) return `kind differs (baseline ${a.kind}, run ${b.kind})`;
  const keys = [...new Set([...Object.keys(a.params ?? {}), ...Object.keys(b.params ?? {})])].sort();
  const diffs: string[] = [];
  for (const k of keys) {
    const va = stableJson(a.params?.[k]);
    const vb = stableJson(b.params?.[k]);
    if (va !== vb) diffs.push(`${k} baseline ${va ?? "none"}, run ${vb ?? "none"}`);
  }
  return diffs.length ? `params differ (${diffs.join("; ")})` : undefined;
}

function stableJson(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === "object" && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)))
      : val,
  );
}

/**
 * Compares every test the two results share, on the policy's gated metrics. Tests that exist on one side only, or
 * differ in kind or parameters, get a check that says so (this is how "comparing incompatible suites says which
 * tests differ").
 */
export function compareTests(
  baseline: Results,
  candidate: Results,
  policy: Policy,
  options: CompareOptions = {},
): Check[] {
  const checks: Check[] = [];
  const baseTests = new Map(baseline.tests.map((t) => [t.name, t]));
  const candTests = new Map(candidate.tests.map((t) => [t.name, t]));
  const evidence: MetricEvidence[] = [];
  const order: Array<Check | MetricEvidence> = [];
  for (const b of baseline.tests) {
    if (!candTests.has(b.name)) {
      order.push({
        test: b.name,
        metric: "*",
        source: "baseline",
        verdict: "warn",
        reason: `test ${b.name} is in the baseline but not in this run: not compared`,
      });
    }
  }
  for (const c of candidate.tests) {
    const b = baseTests.get(c.name);
    if (!b) {
      order.push({
        test: c.name,
        metric: "*",
        source: "baseline",
        verdict: "pass",
        reason: `test ${c.name} is new: no baseline to compare with (propose one with tokengate baseline update)`,
      });
      continue;
    }
    const diff = testDifference(b, c);
    if (diff) {
      order.push({
        test: c.name,
        metric: "*",
        source: "baseline",
        verdict: "warn",
        reason: `test ${c.name} not comparable: ${diff}`,
      });
      continue;
    }
    for (const g of policy.gate) {
      const bm = b.metrics[g.metric];
      const cm = c.metrics[g.metric];
      if (!bm && !cm) continue;
      if (!bm || !cm) {
        const label = checkLabel(g.metric, g.stat, (cm ?? bm)!.histogram === undefined);
        order.push({
          test: c.name,
          metric: `${g.metric}.${g.stat}`,
          source: "baseline",
          verdict: bm ? "warn" : "pass",
          reason: bm
            ? `${label}: in the baseline but not measured in this run`
            : `${label}: not in the baseline; not compared`,
        });
        continue;
      }
      const e = gatherEvidence(c.name, g.metric, g.stat, bm, cm, policy, options);
      evidence.push(e);
      order.push(e);
    }
  }
  const decided = new Map<MetricEvidence, Check>();
  const decisions = decideAll(evidence, policy);
  for (const [i, e] of evidence.entries()) decided.set(e, decisions[i]!);
  for (const item of order) checks.push("source" in item ? item : decided.get(item)!);
  return checks;
}
