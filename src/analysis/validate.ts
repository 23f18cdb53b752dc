/**
 * Validation harness for the verdict statistics (docs/verdicts.md "Validation"): from real runs with many trials,
 * resample many K-trial comparisons and count how often the gate fails or warns.
 *
 * - A/A (the same server and model measured twice, or one long run split in two): every fail is a false fail.
 * - A/B (a real slowdown, e.g. fewer llama-server threads): warn-or-fail is detection.
 *
 * Resampling: for each comparison, K trial indices are drawn without replacement from the baseline run and K from the
 * candidate run (in split mode, 2K distinct indices from the one run: the first K are the baseline, the rest the
 * candidate). A trial index selects that trial's summary in every metric of the test, so the correlation between
 * metrics of one trial (what Holm must cope with) is kept. Comparisons overlap in the trials they use, so the rates
 * estimate the per-run probability for these trials; their uncertainty is set by the number of real trials far more
 * than by the number of comparisons.
 */
import type { Check, MetricResult, Results, TestResult, VerdictLevel } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import { loadResults } from "./baseline.js";
import { compareTests } from "./compare.js";
import { type PolicyInput, resolvePolicy } from "./policy.js";
import { seededRandom } from "./stats.js";
import { applyConfirmation, summarize } from "./verdict.js";

export interface ValidationInput {
  /** Run A (the baseline side). Needs at least K trials per test, 2K in split mode. */
  a: Results;
  /** Run A' (A/A) or B (A/B). Absent: A/A by splitting A's trials into disjoint halves. */
  b?: Results;
  /** Trials per side in each comparison; the policy's minTrials when absent (the default trial count). */
  k?: number;
  /** Number of resampled comparisons; at least 100. Default 200. */
  comparisons?: number;
  seed?: number;
  policy?: PolicyInput;
  /**
   * Also simulate the confirmation rerun: a failing comparison draws K fresh candidate trials (disjoint from the
   * first draw when the run has enough) and applyConfirmation decides. Default true.
   */
  confirm?: boolean;
}

export interface ValidationReport {
  mode: "split" | "two-runs";
  k: number;
  comparisons: number;
  /** Trials available per test on each side (the smallest over tests). */
  trialsAvailable: { a: number; b: number };
  /** Overall verdicts of the baseline comparison (targets and error rates left out), before confirmation. */
  counts: Record<VerdictLevel, number>;
  failRate: number;
  warnOrFailRate: number;
  /** After the simulated confirmation rerun (equal to the above when confirm is off). */
  confirmed: { counts: Record<VerdictLevel, number>; failRate: number; warnOrFailRate: number };
  /** Per `test/metric.stat`: how often that check failed or warned (before confirmation). */
  perMetric: Record<string, { fail: number; warn: number }>;
  /**
   * Two-runs mode: median(all B trials) / median(all A trials) - 1 per `test/metric.stat` of the gate: the change the
   * A/B setup really produced, to read detection rates against (a "10%" slowdown may measure 7% or 14%).
   */
  observedChange: Record<string, number>;
  /** How the comparisons were drawn, for the docs table. */
  method: string;
}

export function validateVerdicts(input: ValidationInput): ValidationReport {
  const policy = resolvePolicy({ ...input.policy });
  const k = input.k ?? policy.minTrials;
  const comparisons = input.comparisons ?? 200;
  const confirm = input.confirm ?? true;
  if (!Number.isInteger(comparisons) || comparisons < 100) {
    throw new BadInputError(`needs at least 100 comparisons, got ${comparisons}`, {
      subject: "comparisons",
      hint: "e.g. 200",
    });
  }
  if (!Number.isInteger(k) || k < 2) {
    throw new BadInputError(`trials per side must be an integer >= 2, got ${k}`, { subject: "k", hint: "e.g. 5" });
  }
  const split = input.b === undefined;
  const a = input.a;
  const b = input.b ?? input.a;
  const pairs = a.tests
    .map((t) => ({ ta: t, tb: b.tests.find((u) => u.name === t.name) }))
    .filter((p): p is { ta: TestResult; tb: TestResult } => p.tb !== undefined);
  if (pairs.length === 0) {
    throw new BadInputError("the two runs share no test", {
      subject: "b",
      hint: "validate with two runs of the same suite",
    });
  }
  const na = Math.min(...pairs.map((p) => trialCount(p.ta)));
  const nb = Math.min(...pairs.map((p) => trialCount(p.tb)));
  const needA = split ? 2 * k : k;
  if (na < needA || nb < k) {
    throw new BadInputError(
      split
        ? `splitting one run needs ${2 * k} trials per test (2 x ${k}); it has ${na}`
        : `each run needs at least ${k} trials per test; A has ${na}, B has ${nb}`,
      { subject: "a", hint: `measure more trials, e.g. trials: ${Math.max(4 * k, 20)} in the suite` },
    );
  }
  const random = seededRandom(`validate:${input.seed ?? policy.seed}`);
  // The interval is reported, never decided on (docs): a small bootstrap keeps 200 comparisons fast.
  const fastPolicy = { ...policy, bootstrapResamples: 100 };
  const counts = zeroCounts();
  const confirmedCounts = zeroCounts();
  const perMetric: ValidationReport["perMetric"] = {};
  for (let i = 0; i < comparisons; i++) {
    let baseIdx: number[];
    let candIdx: number[];
    let spare: number[];
    if (split) {
      const drawn = draw(na, na, random);
      baseIdx = drawn.slice(0, k);
      candIdx = drawn.slice(k, 2 * k);
      spare = drawn.slice(2 * k);
    } else {
      baseIdx = draw(na, k, random);
      const drawn = draw(nb, nb, random);
      candIdx = drawn.slice(0, k);
      spare = drawn.slice(k);
    }
    const baseRun = subset(
      a,
      pairs.map((p) => p.ta),
      baseIdx,
    );
    const candRun = subset(
      b,
      pairs.map((p) => p.tb),
      candIdx,
    );
    const checks = compareTests(baseRun, candRun, fastPolicy, { perRequest: false });
    const verdict = summarize(checks);
    counts[verdict.overall]++;
    for (const c of checks) tally(perMetric, c);
    let final = verdict;
    if (confirm && policy.confirmFails && verdict.overall === "fail") {
      const rerunIdx = spare.length >= k ? spare.slice(0, k) : draw(nb, k, random);
      const rerun = summarize(
        compareTests(
          baseRun,
          subset(
            b,
            pairs.map((p) => p.tb),
            rerunIdx,
          ),
          fastPolicy,
          { perRequest: false },
        ),
      );
      final = applyConfirmation(verdict, rerun, policy);
    }
    confirmedCounts[final.overall]++;
  }
  const observedChange: Record<string, number> = {};
  if (!split) {
    for (const { ta, tb } of pairs) {
      for (const g of policy.gate) {
        const ma = ta.metrics[g.metric];
        const mb = tb.metrics[g.metric];
        if (!ma || !mb) continue;
        const va = median(ma.trials.map((t) => t[g.stat]));
        const vb = median(mb.trials.map((t) => t[g.stat]));
        if (va > 0) observedChange[`${ta.name}/${g.metric}.${g.stat}`] = vb / va - 1;
      }
    }
  }
  const rate = (c: Record<VerdictLevel, number>) => ({
    failRate: c.fail / comparisons,
    warnOrFailRate: (c.fail + c.warn) / comparisons,
  });
  return {
    mode: split ? "split" : "two-runs",
    k,
    comparisons,
    trialsAvailable: { a: na, b: nb },
    counts,
    ...rate(counts),
    confirmed: { counts: confirmedCounts, ...rate(confirmedCounts) },
    perMetric,
    observedChange,
    method: split
      ? `${comparisons} comparisons of ${k} vs ${k} trials, each drawn without replacement from the ${na} trials of one run and split into disjoint halves`
      : `${comparisons} comparisons of ${k} vs ${k} trials, drawn without replacement from A's ${na} and B's ${nb} trials`,
  };
}

/**
 * The harness on results files (what the lead's validation runs write): `a` and optionally `b`, each a results.json
 * (or baseline) with many trials per test. Also reports the true change each metric shows over all trials, so the
 * detection rate can be read against the slowdown actually produced.
 */
export async function validateFiles(
  options: Omit<ValidationInput, "a" | "b"> & { a: string; b?: string },
): Promise<ValidationReport> {
  const a = await loadResults(options.a);
  const b = options.b === undefined ? undefined : await loadResults(options.b);
  const { a: _aFile, b: _bFile, ...rest } = options;
  const input: ValidationInput = { ...rest, a };
  if (b) input.b = b;
  return validateVerdicts(input);
}

function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function zeroCounts(): Record<VerdictLevel, number> {
  return { pass: 0, warn: 0, fail: 0 };
}

function tally(perMetric: ValidationReport["perMetric"], c: Check): void {
  if (c.verdict === "pass") return;
  const key = `${c.test}/${c.metric}`;
  const e = perMetric[key] ?? { fail: 0, warn: 0 };
  e[c.verdict]++;
  perMetric[key] = e;
}

/** Trials a test has for every metric (metrics can lack a trial when it had no samples). */
function trialCount(t: TestResult): number {
  const lengths = Object.values(t.metrics).map((m) => m.trials.length);
  return lengths.length ? Math.min(...lengths) : 0;
}

/** `count` distinct indices in [0, n), in random order (partial Fisher-Yates). */
function draw(n: number, count: number, random: () => number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (n - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, count);
}

/** The run restricted to the given trials (same indices in every metric of a test); histograms dropped. */
function subset(run: Results, tests: readonly TestResult[], idx: readonly number[]): Results {
  return {
    ...run,
    tests: tests.map((t) => ({
      ...t,
      trials: idx.length,
      metrics: Object.fromEntries(
        Object.entries(t.metrics).map(([key, m]): [string, MetricResult] => {
          const { histogram: _drop, ...rest } = m;
          return [key, { ...rest, trials: idx.map((i) => m.trials[i]!) }];
        }),
      ),
    })),
  };
}
