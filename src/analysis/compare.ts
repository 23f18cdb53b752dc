/**
 * Baseline comparison, metric by metric. Each side is one or more runs (separate server processes: results files),
 * each with K per-trial values of the gated statistic. Two tests in the metric's worse direction:
 * - a one-sided rank test on per-trial values pooled over each side's runs (the trial level), and
 * - the run-level test on run medians (stats.ts runLevelTest), whose variance includes run-to-run noise: measured from
 *   the runs' spread when a side has several runs, assumed (policy.runNoise) when it has one.
 * A regression needs both (the larger p-value decides: an intersection-union test, valid at alpha), then Holm across
 * the family, then the decision table of docs/verdicts.md. Pure: results in, checks out.
 */
import { decodeHistogram } from "../measure/histogram.js";
import type { MachineLoad } from "../measure/machine-load.js";
import type { Better, Check, CheckComparison, MetricResult, Results, TestResult } from "../measure/results.js";
import { checkLabel, formatChange, formatP, formatPercent, type Stat } from "./format.js";
import { detectableChange, type PairedResult, pairedInterval, pairedRunTest, pairsNeeded } from "./paired.js";
import { busyShare, type Policy, runNoiseFor } from "./policy.js";
import {
  holmAdjust,
  mannWhitney,
  minOneSidedP,
  type RankTestResult,
  type RatioInterval,
  type RunLevelResult,
  runLevelInterval,
  runLevelTest,
  seededRandom,
  studentTQuantile,
  trialsNeeded,
} from "./stats.js";

/**
 * One side of a comparison: its runs, each a separate server process (one results file). A plain Results is one run.
 * Trials of one run share that process's condition, so they are never pooled as if they were runs.
 */
export type Runs = Results | readonly Results[];

export function asRuns(runs: Runs): readonly Results[] {
  return Array.isArray(runs) ? (runs as readonly Results[]) : [runs as Results];
}

/** Everything measured about one gated metric of one test, before the family-wide correction. */
export interface MetricEvidence {
  test: string;
  metric: string;
  stat: Stat;
  /** `ttft p95`. */
  label: string;
  unit: string;
  better: Better;
  /** Per-trial values, run by run. */
  baselineRuns: number[][];
  candidateRuns: number[][];
  /** The same values pooled over runs. */
  baselineValues: number[];
  candidateValues: number[];
  /** Geometric mean of the side's run medians: the median when the side has one run. */
  baselineMedian: number;
  candidateMedian: number;
  /** candidateMedian / baselineMedian - 1: +0.14 is 14% higher, whatever "better" is. */
  change: number;
  /** The change in the worse direction: positive is a regression (slower latency, lower throughput). */
  worse: number;
  /** Bootstrap interval of the ratio, run-to-run noise included; absent with fewer than 2 values on a side. */
  ci?: RatioInterval;
  /** One-sided rank test on per-trial values pooled over runs (alternative: the candidate is worse); absent below minTrials. */
  rank?: RankTestResult;
  /** The run-level test (alternative: the candidate is worse); absent below minTrials and in paired comparisons. */
  run?: RunLevelResult;
  /** Same-runner A/B: the paired test on interleaved pairs of runs (replaces the run-level test); absent below 2 pairs. */
  paired?: PairedResult;
  /** Standard error (ln scale) and degrees of freedom of the level comparison that decides: for the detectable change. */
  noise?: { se: number; df: number };
  /** The p-value that decides: the larger of the two tests' (both must find a regression). */
  pValue?: number;
  /** One-sided rank test on per-request samples (pooled over trials and runs): supporting evidence only, see docs. */
  requestRank?: RankTestResult;
}

export interface CompareOptions {
  /** Also run the per-request rank test from the HDR histograms (default true). The validation harness turns it off. */
  perRequest?: boolean;
  /** Compute the bootstrap interval (default true). It is reported, never decided on: the validation harness skips it. */
  interval?: boolean;
  /**
   * Same-runner A/B (tokengate ab): baseline run i and candidate run i ran next to each other on one machine, and are
   * compared as pairs (paired.ts) instead of by the run-level test with its assumed run-to-run noise.
   */
  paired?: boolean;
}

/**
 * Gathers the evidence for one metric from each side's runs of the test (a run that lacks the metric adds nothing).
 * `policy.runNoise` must be resolved by the caller (compareTests takes it from the baseline's environment); unset, no
 * run-to-run noise is assumed and only the runs' measured spread counts.
 */
export function gatherEvidence(
  testName: string,
  metricKey: string,
  stat: Stat,
  base: MetricResult | readonly MetricResult[],
  cand: MetricResult | readonly MetricResult[],
  policy: Policy,
  options: CompareOptions = {},
): MetricEvidence {
  const baseRuns: readonly MetricResult[] = Array.isArray(base) ? base : [base as MetricResult];
  const candRuns: readonly MetricResult[] = Array.isArray(cand) ? cand : [cand as MetricResult];
  const first = candRuns[0] ?? baseRuns[0]!;
  const better = first.better;
  const xr = baseRuns.map((m) => trialValues(m, stat)).filter((v) => v.length > 0);
  const yr = candRuns.map((m) => trialValues(m, stat)).filter((v) => v.length > 0);
  const x = xr.flat();
  const y = yr.flat();
  const aggregate =
    candRuns.every((m) => m.histogram === undefined) && baseRuns.every((m) => m.histogram === undefined);
  const bm = levelOf(xr);
  const cm = levelOf(yr);
  const ratio = bm === 0 ? (cm === 0 ? 1 : Number.POSITIVE_INFINITY) : cm / bm;
  const change = ratio - 1;
  const ev: MetricEvidence = {
    test: testName,
    metric: metricKey,
    stat,
    label: checkLabel(metricKey, stat, aggregate),
    unit: first.unit || baseRuns[0]?.unit || "",
    better,
    baselineRuns: xr,
    candidateRuns: yr,
    baselineValues: x,
    candidateValues: y,
    baselineMedian: bm,
    candidateMedian: cm,
    change,
    worse: better === "lower" ? change : -change,
  };
  const alternative = better === "lower" ? "greater" : "less";
  if (options.paired) {
    // Pairs stay aligned: run i of each side, whatever the other runs hold.
    const paired = pairedRunTest(
      baseRuns.map((m) => trialValues(m, stat)),
      candRuns.map((m) => trialValues(m, stat)),
      alternative,
    );
    if (paired) {
      ev.paired = paired;
      ev.noise = { se: paired.se, df: paired.df };
      if (options.interval !== false) ev.ci = pairedInterval(paired, policy.ciLevel);
      if (x.length >= policy.minTrials && y.length >= policy.minTrials) {
        ev.rank = mannWhitney(x, y, alternative);
        ev.pValue = Math.max(ev.rank.pValue, paired.pValue);
      }
    }
    return ev;
  }
  const run = runLevelTest(xr, yr, {
    runNoise: policy.runNoise ?? 0,
    runNoiseDf: policy.runNoiseDf,
    alternative,
  });
  if (options.interval !== false && x.length >= 2 && y.length >= 2 && bm > 0 && run) {
    ev.ci = runLevelInterval(xr, yr, run, {
      resamples: policy.bootstrapResamples,
      level: policy.ciLevel,
      random: seededRandom(`${policy.seed}:${testName}:${metricKey}.${stat}`),
    });
  }
  if (run) ev.noise = { se: run.se, df: run.df };
  if (x.length >= policy.minTrials && y.length >= policy.minTrials) {
    ev.rank = mannWhitney(x, y, alternative);
    if (run) ev.run = run;
    ev.pValue = Math.max(ev.rank.pValue, run?.pValue ?? 0);
  }
  if (options.perRequest !== false) {
    const xs = pooledRequestSamples(baseRuns);
    const ys = pooledRequestSamples(candRuns);
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

/**
 * A side's level: the geometric mean of its run medians, on the ln scale exactly as the run-level test computes it
 * (for one run with an odd number of trials, the median). Falls back to the mean of run medians when a value is not
 * positive.
 */
function levelOf(runs: readonly (readonly number[])[]): number {
  if (runs.length === 0) return Number.NaN;
  if (runs.every((r) => r.every((v) => v > 0))) {
    return Math.exp(runs.reduce((a, r) => a + medianOf(r.map((v) => Math.log(v))), 0) / runs.length);
  }
  return runs.reduce((a, r) => a + medianOf(r), 0) / runs.length;
}

/** Per-request samples of every run of a side, concatenated; undefined when any run's histogram is missing or unreadable. */
function pooledRequestSamples(runs: readonly MetricResult[]): number[] | undefined {
  const out: number[] = [];
  for (const m of runs) {
    if (!m.histogram) return undefined;
    const s = requestSamples(m.histogram);
    if (!s) return undefined;
    for (const v of s) out.push(v);
  }
  return out;
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
    if (e.pValue === undefined) continue;
    const k = familyOf(e, policy);
    families.set(k, [...(families.get(k) ?? []), e]);
  }
  const adjusted = new Map<MetricEvidence, { p: number; m: number }>();
  for (const members of families.values()) {
    const ps = holmAdjust(members.map((e) => e.pValue!));
    for (const [i, e] of members.entries()) adjusted.set(e, { p: ps[i]!, m: members.length });
  }
  return evidence.map((e) => decide(e, policy, adjusted.get(e)));
}

/** `5 vs 5 trials` for one run a side; `3 vs 1 runs, 15 vs 5 trials` otherwise; `3 pairs, ...` for an A/B. */
function sizeText(e: MetricEvidence): string {
  const trials = `${e.baselineValues.length} vs ${e.candidateValues.length} trials`;
  if (e.paired) return `${e.paired.pairs} pairs, ${trials}`;
  const rb = e.baselineRuns.length;
  const rc = e.candidateRuns.length;
  return rb === 1 && rc === 1 ? trials : `${rb} vs ${rc} runs, ${trials}`;
}

/** A between-run sd on the ln scale as the percent a reader expects (exp(sd) - 1). */
function noisePercent(lnSd: number): string {
  return formatPercent(Math.expm1(lnSd));
}

/**
 * What the run-level test assumed, for reasons: a single-run baseline says the assumption and how to replace it; a
 * multi-run baseline says the run-to-run noise it measured (combined with the assumption).
 */
export function runNoiseNote(run: RunLevelResult | undefined, policy: Policy): { inline: string; tail: string } {
  if (!run) return { inline: "", tail: "" };
  if (run.runs.baseline === 1) {
    const measured =
      run.measuredDf > 0 ? `, ${noisePercent(run.betweenSd)} with the ${run.runs.candidate} candidate runs` : "";
    return { inline: "", tail: `; ${singleRunNote(policy)}${measured}` };
  }
  return { inline: `, run-to-run noise ${noisePercent(run.betweenSd)}`, tail: "" };
}

/** The reason's words for a single-run baseline (docs/verdicts.md). */
export function singleRunNote(policy: Policy): string {
  return `single-run baseline: run-to-run noise assumed ${formatPercent(policy.runNoise ?? 0)}; add runs with baseline update --from run1.json --from run2.json`;
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
  if (e.pValue !== undefined) comparison.pValue = e.pValue;
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
  const size = sizeText(e);
  const requestNote = e.requestRank
    ? `; per-request rank test ${formatP(e.requestRank.pValue)} (ignores run-to-run noise)`
    : "";

  if (e.pValue === undefined || !holm) {
    // Too few trials for the tests: a regression-sized change is inconclusive, never a silent pass.
    const more = policy.minTrials - Math.min(nb, nc);
    if (e.worse >= policy.warn) {
      comparison.inconclusive = true;
      comparison.moreTrials = more;
      return check(
        "warn",
        `${head} inconclusive: ${more} more trial${more === 1 ? "" : "s"} (${size}, need ${policy.minTrials})${requestNote}`,
      );
    }
    return check("pass", `${head} below warn ${formatPercent(policy.warn)} (only ${size}: not tested)`);
  }

  const p = `${formatP(holm.p)}${holm.m > 1 ? " Holm" : ""}`;
  // What a pass is worth: the smallest regression this comparison's own noise would have caught (at alpha / m, the
  // strictest level Holm can ask of a member of this family, and the policy's power).
  const alphaEach = policy.alpha / holm.m;
  const resolvable = minOneSidedP(nb, nc) <= alphaEach;
  const detectable =
    e.noise && resolvable ? detectableChange(e.noise.se, e.noise.df, alphaEach, policy.power) : undefined;
  if (detectable !== undefined && Number.isFinite(detectable)) comparison.detectable = detectable;
  if (e.paired) comparison.pairs = e.paired.pairs;
  const sees = seesText(
    detectable,
    policy,
    // Only worked out when it is said: the search costs a few hundred t quantiles.
    detectable !== undefined && !(detectable <= policy.fail) ? remedy(e, policy, alphaEach) : "",
  );
  if (e.worse < policy.noiseFloor) {
    if (e.worse <= -policy.noiseFloor) {
      const significantlyBetter = e.ci ? (e.better === "lower" ? e.ci.high < 1 : e.ci.low > 1) : false;
      return check("pass", `${head} ${significantlyBetter ? "better" : "no significant change"}${sees}`);
    }
    return check(
      "pass",
      `${head} no significant change: within noise floor ${formatPercent(policy.noiseFloor)}${sees}`,
    );
  }
  const note = e.paired
    ? { inline: `, pair noise ${noisePercent(e.paired.sdDiff)}`, tail: "" }
    : runNoiseNote(e.run, policy);
  const significant = holm.p <= policy.alpha;
  if (significant && e.worse >= policy.fail) {
    return check("fail", `${head} ${beyond("fail", policy.fail, e.better)} (${size}${note.inline}, ${p})${note.tail}`);
  }
  if (significant && e.worse >= policy.warn) {
    return check("warn", `${head} ${beyond("warn", policy.warn, e.better)} (${size}${note.inline}, ${p})${note.tail}`);
  }
  if (e.worse >= policy.warn) {
    comparison.inconclusive = true;
    // A change the size of a regression that the evidence cannot confirm passes, and says so with what the gate could
    // have seen: warning on it made 28% (H200) and 53% (2-core CPU) of no-change runs warn against a stored baseline,
    // and 20-65% of A/A gates (docs/verdicts.md "Inconclusive"). policy.inconclusive: warn restores the warning.
    const level = policy.inconclusive ?? "pass";
    if (e.paired) {
      // An A/B: more pairs is the remedy (the pairs' own spread says how many).
      const need = pairsNeeded(e.paired.sdDiff, e.worse, alphaEach, policy.power);
      const more = need === undefined ? "over 100 pairs" : `${need} pairs`;
      if (need !== undefined) comparison.moreTrials = Math.max(1, need - e.paired.pairs);
      return check(
        level,
        `${head} inconclusive: within the pairs' noise ${noisePercent(e.paired.sdDiff)} (${size}, ${p}, needs <= ${policy.alpha}); ${more} would detect a change this size (--pairs)${sees}`,
      );
    }
    // Which level holds the evidence back: the runs (more trials cannot help) or the trials.
    if (e.run && e.rank && e.run.pValue > e.rank.pValue) {
      const noise = e.run.runs.baseline === 1 ? "assumed " : "";
      return check(
        level,
        `${head} inconclusive: within ${noise}run-to-run noise ${noisePercent(e.run.betweenSd)} (${size}, ${p}, needs <= ${policy.alpha})${
          note.tail || "; add baseline runs (baseline update --from ...) or rerun"
        }`,
      );
    }
    const need = trialsNeeded(e.baselineValues, e.candidateValues, {
      alphaEach: policy.alpha / holm.m,
      minTrials: policy.minTrials,
    });
    const more = need.perSide - Math.min(nb, nc);
    const what =
      !Number.isFinite(more) || more > 50
        ? "over 50 more trials (the change is within this runner's noise)"
        : `${Math.max(1, more)} more trial${Math.max(1, more) === 1 ? "" : "s"}`;
    if (Number.isFinite(more) && more <= 50) comparison.moreTrials = Math.max(1, more);
    return check(
      level,
      `${head} inconclusive: ${what} (${p}, needs <= ${policy.alpha}${need.limitedBy === "rank-test resolution" ? `; ${size} cannot go lower` : ""})${note.tail}`,
    );
  }
  return check("pass", `${head} no significant change: below warn ${formatPercent(policy.warn)}${sees}`);
}

/**
 * `; would have caught >= 4.1%`: what a pass is worth. Past 100% the figure says only that the comparison could not
 * see a change of any size that matters (two pairs of runs, one trial...).
 */
function seesText(detectable: number | undefined, policy: Policy, fix: string): string {
  if (detectable === undefined) return "";
  const how = fix ? `: ${fix}` : "";
  if (!Number.isFinite(detectable) || detectable >= 1) {
    return `; could not have caught a change under 100%${how}`;
  }
  const wide = detectable > policy.fail ? ` (wider than fail ${formatPercent(policy.fail)}${how})` : "";
  return `; would have caught >= ${formatPercent(detectable)}${wide}`;
}

/**
 * What would bring the detectable change down to the fail threshold: pairs for an A/B; trials per run when the
 * trials' noise is what limits a baseline comparison; more runs (or an A/B) when run-to-run noise is.
 */
function remedy(e: MetricEvidence, policy: Policy, alphaEach: number): string {
  if (e.paired) {
    const n = pairsNeeded(e.paired.sdDiff, policy.fail, alphaEach, policy.power);
    return n === undefined ? "over 100 pairs would be needed" : `--pairs ${n} would reach it`;
  }
  const run = e.run;
  if (!run) return "";
  const trialsPerRun = Math.max(1, Math.round(e.candidateValues.length / Math.max(1, e.candidateRuns.length)));
  const within = Math.max(0, run.se * run.se - run.betweenVariance);
  // The standard error the fail threshold needs at these degrees of freedom; more trials shrink only the within part.
  const seNeeded =
    Math.log1p(policy.fail) / (studentTQuantile(1 - alphaEach, run.df) + studentTQuantile(policy.power, run.df));
  const room = seNeeded * seNeeded - run.betweenVariance;
  const k = room > 0 ? Math.ceil((within * trialsPerRun) / room) : Number.POSITIVE_INFINITY;
  if (k <= 100) return `trials: ${Math.max(trialsPerRun + 1, k)} would reach it`;
  return "run-to-run noise limits it: add baseline runs (baseline update --from ...) or gate with tokengate ab";
}

/** `above fail 10%` for lower-is-better metrics, `below fail -10%` for higher-is-better ones. */
function beyond(level: "warn" | "fail", threshold: number, better: Better): string {
  return better === "lower"
    ? `above ${level} ${formatPercent(threshold)}`
    : `below ${level} -${formatPercent(threshold)}`;
}

/**
 * Why a test's candidate runs cannot be failed: the busiest run's other work took more of the machine than
 * `policy.busyMachine`. Undefined when every run was quiet enough or recorded no load (docs/verdicts.md "Busy machines").
 */
export function busyNote(tests: readonly TestResult[], policy: Policy): string | undefined {
  let worst: { load: MachineLoad; index: number } | undefined;
  for (const [index, t] of tests.entries()) {
    const share = busyShare(t.machine, policy.busyMachine);
    if (share !== undefined && (!worst || share > worst.load.otherShare)) worst = { load: t.machine!, index };
  }
  if (!worst) return undefined;
  const { load, index } = worst;
  const which = tests.length > 1 ? ` (candidate run ${index + 1} of ${tests.length})` : "";
  const cpus = load.cpus > 0 ? ` of ${load.cpus} CPUs (${(load.otherShare * load.cpus).toFixed(1)} CPUs)` : "";
  return `not judged a fail: other work used ${formatPercent(load.otherShare)}${cpus} during this run${which}, above busyMachine ${formatPercent(policy.busyMachine)}; rerun on a quiet runner`;
}

/** A fail on a busy machine becomes an inconclusive warn that says why; other verdicts stand. */
function notAFail(check: Check, note: string): Check {
  if (check.verdict !== "fail") return check;
  return {
    ...check,
    verdict: "warn",
    reason: `${check.reason}; ${note}`,
    ...(check.comparison ? { comparison: { ...check.comparison, inconclusive: true } } : {}),
  };
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
 * Compares every test the two sides share, on the policy's gated metrics. Each side is one run or several (separate
 * server processes); the first run of each side decides which tests exist and how they are configured (the runs of a
 * baseline are checked to agree when it is written). Tests that exist on one side only, or differ in kind or
 * parameters, get a check that says so (this is how "comparing incompatible suites says which tests differ").
 * A single-run baseline adds one pass check saying the run-to-run noise was assumed.
 */
export function compareTests(
  baselineRuns: Runs,
  candidateRuns: Runs,
  policyIn: Policy,
  options: CompareOptions = {},
): Check[] {
  const baseSide = asRuns(baselineRuns);
  const candSide = asRuns(candidateRuns);
  const baseline = baseSide[0]!;
  const candidate = candSide[0]!;
  // The assumed run-to-run noise is the policy's, else the default for the baseline's kind of machine.
  const policy: Policy = { ...policyIn, runNoise: runNoiseFor(policyIn, baseline.environment) };
  const checks: Check[] = [];
  const baseTests = new Map(baseline.tests.map((t) => [t.name, t]));
  const candTests = new Map(candidate.tests.map((t) => [t.name, t]));
  const evidence: MetricEvidence[] = [];
  const order: Array<Check | MetricEvidence> = [];
  const busyNotes = new Map<string, string>();
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
  const sameTest = (runs: readonly Results[], ref: TestResult) =>
    runs
      .map((r) => r.tests.find((t) => t.name === ref.name))
      .filter((t): t is TestResult => t !== undefined && testDifference(ref, t) === undefined);
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
    const bTests = sameTest(baseSide, b);
    const cTests = sameTest(candSide, c);
    const busy = busyNote(cTests, policy);
    if (busy) busyNotes.set(c.name, busy);
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
      const metricsOf = (tests: readonly TestResult[]) =>
        tests.map((t) => t.metrics[g.metric]).filter((m): m is MetricResult => m !== undefined);
      const e = gatherEvidence(c.name, g.metric, g.stat, metricsOf(bTests), metricsOf(cTests), policy, options);
      evidence.push(e);
      order.push(e);
    }
  }
  const decided = new Map<MetricEvidence, Check>();
  const decisions = decideAll(evidence, policy);
  for (const [i, e] of evidence.entries()) {
    const busy = busyNotes.get(e.test);
    decided.set(e, busy ? notAFail(decisions[i]!, busy) : decisions[i]!);
  }
  for (const item of order) checks.push("source" in item ? item : decided.get(item)!);
  if (baseSide.length === 1 && evidence.length > 0) {
    checks.push({ test: "*", metric: "*", source: "baseline", verdict: "pass", reason: singleRunNote(policy) });
  }
  return checks;
}
