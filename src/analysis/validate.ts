/**
 * Validation harness for the verdict statistics (docs/verdicts.md "Validation"): from real runs, resample many
 * comparisons as the gate would make them and count how often it fails or warns.
 *
 * - A/A (the same server and model measured in separate runs): every fail is a false fail.
 * - A/B (a real slowdown, e.g. a model with 10% more layers): warn-or-fail is detection.
 *
 * Resampling is at two levels, because that is how the noise is built (a run effect shared by every trial of one
 * server process, plus trial noise):
 * - runs: each comparison draws `baselineRuns` distinct runs of A as the baseline and one run of B as the candidate
 *   (in an A/A from one pool of runs, all distinct), and, to simulate the confirmation rerun in a fresh process, one
 *   more distinct run of B. Runs are never split or mixed: their trials stay together.
 * - trials: within each drawn run, K trials are drawn without replacement (a run with exactly K trials gives all of
 *   them). A trial index selects that trial in every metric of the test, so the correlation between metrics of one
 *   trial (what Holm must cope with) is kept.
 * With one run per side the harness falls back to trials only ("two-runs", or "split" with one run in all): those
 * modes see no run-to-run noise and are optimistic about false fails (docs).
 */
import type { Check, MetricResult, Results, TestResult, VerdictLevel } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import { loadRuns } from "./baseline.js";
import { compareTests, type Runs } from "./compare.js";
import { formatChange, formatPercent } from "./format.js";
import { type PolicyInput, resolvePolicy } from "./policy.js";
import { binomial, seededRandom } from "./stats.js";
import { applyConfirmation, summarize } from "./verdict.js";

export interface ValidationInput {
  /** Side A, the baseline side: one run, or several runs (separate server processes) of one setup. */
  a: Runs;
  /**
   * Side B: A' (A/A) or B (A/B). Absent: A/A within A (disjoint runs of A as baseline and candidate; with one run,
   * disjoint halves of its trials).
   */
  b?: Runs;
  /** Trials per run in each comparison; the policy's minTrials when absent (the default trial count). */
  k?: number;
  /** Runs per baseline in each comparison (runs mode). Default: 3, or fewer when the pool is smaller. */
  baselineRuns?: number;
  /** Number of resampled comparisons; at least 100. Default 200. */
  comparisons?: number;
  seed?: number;
  policy?: PolicyInput;
  /**
   * Also simulate the confirmation rerun: a failing comparison draws a second candidate run (runs mode: another run
   * of B, as a fresh server process would give; trial modes: K more trials of the same run) and applyConfirmation
   * decides on both candidate runs together. Default true.
   */
  confirm?: boolean;
}

export interface RunNoiseEstimate {
  /** Runs it was estimated from. */
  runs: number;
  /** Between-run sd of run medians beyond what trial noise explains (method of moments, floored at 0), as a fraction. */
  between: number;
  /** Within-run sd of trials, as a fraction. */
  within: number;
}

export interface ValidationReport {
  /** runs: run-level resampling; two-runs / split: one run a side, trials only. */
  mode: "runs" | "two-runs" | "split";
  /** A/A (no b, or b given as A') or A/B: only the caller knows; `pooled` says whether B was drawn from A's pool. */
  pooled: boolean;
  k: number;
  /** Runs per baseline (runs mode), 1 otherwise. */
  baselineRuns: number;
  comparisons: number;
  /** Runs on each side. */
  runsAvailable: { a: number; b: number };
  /** Trials available per run (the smallest over runs and tests) on each side. */
  trialsAvailable: { a: number; b: number };
  /** Distinct run draws (baseline set x candidate x confirmation run); 1 in trial modes. */
  distinctRunDraws: number;
  /** Overall verdicts of the baseline comparison (targets and error rates left out), before confirmation. */
  counts: Record<VerdictLevel, number>;
  failRate: number;
  warnOrFailRate: number;
  /** After the simulated confirmation rerun (equal to the above when confirm is off). */
  confirmed: { counts: Record<VerdictLevel, number>; failRate: number; warnOrFailRate: number };
  /** Whether a confirmation run was available (runs mode needs one more run of B). */
  confirmation: "fresh run" | "same run" | "off" | "unavailable";
  /** Per `test/metric.stat`: how often that check failed or warned (before confirmation). */
  perMetric: Record<string, { fail: number; warn: number }>;
  /**
   * Not pooled: per `test/metric.stat` of the gate, the geometric mean of B's run medians over A's, minus 1 (with one
   * run a side, the ratio of medians of all trials): the change the A/B setup really produced, to read detection
   * rates against (a "10%" slowdown may measure 7% or 14%).
   */
  observedChange: Record<string, number>;
  /** Run-to-run and trial noise per `test/metric.stat`, measured on each side's runs (sides with >= 2 runs). */
  noise: { a: Record<string, RunNoiseEstimate>; b: Record<string, RunNoiseEstimate> };
  /** How the comparisons were drawn, for the docs table. */
  method: string;
}

export function validateVerdicts(input: ValidationInput): ValidationReport {
  const policy = resolvePolicy({ ...input.policy });
  const k = input.k ?? policy.minTrials;
  const comparisons = input.comparisons ?? 200;
  const confirm = (input.confirm ?? true) && policy.confirmFails;
  if (!Number.isInteger(comparisons) || comparisons < 100) {
    throw new BadInputError(`needs at least 100 comparisons, got ${comparisons}`, {
      subject: "comparisons",
      hint: "e.g. 200",
    });
  }
  if (!Number.isInteger(k) || k < 2) {
    throw new BadInputError(`trials per side must be an integer >= 2, got ${k}`, { subject: "k", hint: "e.g. 5" });
  }
  const aRuns = toRuns(input.a);
  const pooled = input.b === undefined;
  const bRuns = pooled ? aRuns : toRuns(input.b!);
  if (aRuns.length === 0 || bRuns.length === 0) {
    throw new BadInputError("no runs to validate with", { subject: "a", hint: "pass results files of separate runs" });
  }
  const names = aRuns[0]!.tests.map((t) => t.name).filter((n) => bRuns[0]!.tests.some((u) => u.name === n));
  if (names.length === 0) {
    throw new BadInputError("the two sides share no test", {
      subject: "b",
      hint: "validate with runs of the same suite",
    });
  }
  const trialsOf = (runs: readonly Results[]) =>
    Math.min(...runs.map((r) => Math.min(...names.map((n) => trialCount(r.tests.find((t) => t.name === n))))));
  const na = trialsOf(aRuns);
  const nb = trialsOf(bRuns);
  const random = seededRandom(`validate:${input.seed ?? policy.seed}`);
  // The interval is reported, never decided on (docs): skipping it keeps hundreds of comparisons fast.
  const fast = { perRequest: false, interval: false };
  const judge = (base: readonly Results[], cand: readonly Results[]) =>
    summarize(compareTests(base, cand, policy, fast).filter((c) => c.metric !== "*"));

  const runsMode = pooled ? aRuns.length >= 2 : aRuns.length >= 2 || bRuns.length >= 2;
  const mode: ValidationReport["mode"] = runsMode ? "runs" : pooled ? "split" : "two-runs";
  let baselineRuns = 1;
  let confirmation: ValidationReport["confirmation"] = confirm ? (runsMode ? "fresh run" : "same run") : "off";
  let distinctRunDraws = 1;

  if (runsMode) {
    const available = pooled ? aRuns.length - 1 : aRuns.length;
    // By default leave a run of the pool for the confirmation rerun.
    baselineRuns = input.baselineRuns ?? Math.min(3, pooled ? Math.max(1, available - 1) : available);
    if (!Number.isInteger(baselineRuns) || baselineRuns < 1 || baselineRuns > available) {
      throw new BadInputError(
        `${baselineRuns} baseline runs cannot be drawn: side A has ${aRuns.length} runs${pooled ? " and one must be the candidate" : ""}`,
        { subject: "baselineRuns", hint: `at most ${available}; or measure more runs` },
      );
    }
    const spareB = pooled ? aRuns.length - baselineRuns - 1 : bRuns.length - 1;
    if (confirm && spareB < 1) confirmation = "unavailable";
    if (na < k || nb < k) {
      throw new BadInputError(`each run needs at least ${k} trials per test; A has ${na}, B has ${nb}`, {
        subject: "k",
        hint: `compare with k = ${Math.min(na, nb)}, or measure more trials`,
      });
    }
    distinctRunDraws = pooled
      ? binomial(aRuns.length, baselineRuns) * (aRuns.length - baselineRuns) * Math.max(1, spareB)
      : binomial(aRuns.length, baselineRuns) * bRuns.length * Math.max(1, bRuns.length - 1);
  } else {
    const needA = pooled ? 2 * k : k;
    if (na < needA || nb < k) {
      throw new BadInputError(
        pooled
          ? `splitting one run needs ${2 * k} trials per test (2 x ${k}); it has ${na}`
          : `each run needs at least ${k} trials per test; A has ${na}, B has ${nb}`,
        { subject: "a", hint: `measure more runs (better) or more trials, e.g. trials: ${Math.max(4 * k, 20)}` },
      );
    }
  }

  const counts = zeroCounts();
  const confirmedCounts = zeroCounts();
  const perMetric: ValidationReport["perMetric"] = {};
  for (let i = 0; i < comparisons; i++) {
    let base: Results[];
    let cand: Results;
    let rerun: Results | undefined;
    if (runsMode) {
      if (pooled) {
        const order = draw(aRuns.length, aRuns.length, random);
        base = order.slice(0, baselineRuns).map((j) => subsetRun(aRuns[j]!, names, k, random));
        cand = subsetRun(aRuns[order[baselineRuns]!]!, names, k, random);
        const spare = order[baselineRuns + 1];
        if (confirmation === "fresh run" && spare !== undefined) rerun = subsetRun(aRuns[spare]!, names, k, random);
      } else {
        base = draw(aRuns.length, baselineRuns, random).map((j) => subsetRun(aRuns[j]!, names, k, random));
        const order = draw(bRuns.length, Math.min(2, bRuns.length), random);
        cand = subsetRun(bRuns[order[0]!]!, names, k, random);
        if (confirmation === "fresh run" && order[1] !== undefined) {
          rerun = subsetRun(bRuns[order[1]]!, names, k, random);
        }
      }
    } else {
      const a = aRuns[0]!;
      const b = bRuns[0]!;
      let spare: number[];
      if (pooled) {
        const drawn = draw(na, na, random);
        base = [subset(a, names, drawn.slice(0, k))];
        cand = subset(a, names, drawn.slice(k, 2 * k));
        spare = drawn.slice(2 * k);
      } else {
        base = [subset(a, names, draw(na, k, random))];
        const drawn = draw(nb, nb, random);
        cand = subset(b, names, drawn.slice(0, k));
        spare = drawn.slice(k);
      }
      // The old rerun in the same process: K more trials of the same run (it shares the first draw's condition).
      if (confirmation === "same run")
        rerun = subset(b, names, spare.length >= k ? spare.slice(0, k) : draw(nb, k, random));
    }
    const checks = compareTests(base, cand, policy, fast).filter((c) => c.metric !== "*");
    const verdict = summarize(checks);
    counts[verdict.overall]++;
    for (const c of checks) tally(perMetric, c);
    let final = verdict;
    if (verdict.overall === "fail" && rerun) {
      const alone = runsMode ? { rerunAlone: judge(base, [rerun]) } : {};
      final = applyConfirmation(verdict, judge(base, [cand, rerun]), policy, { runs: 2, ...alone });
    }
    confirmedCounts[final.overall]++;
  }

  const observedChange: Record<string, number> = {};
  if (!pooled) {
    for (const name of names) {
      for (const g of policy.gate) {
        const level = (runs: readonly Results[]) => runLevel(runs, name, g.metric, g.stat);
        const la = level(aRuns);
        const lb = level(bRuns);
        if (la !== undefined && lb !== undefined && la > 0)
          observedChange[`${name}/${g.metric}.${g.stat}`] = lb / la - 1;
      }
    }
  }
  const noise = {
    a: noiseOf(aRuns, names, policy.gate),
    b: pooled ? {} : noiseOf(bRuns, names, policy.gate),
  };
  const rate = (c: Record<VerdictLevel, number>) => ({
    failRate: c.fail / comparisons,
    warnOrFailRate: (c.fail + c.warn) / comparisons,
  });
  return {
    mode,
    pooled,
    k,
    baselineRuns,
    comparisons,
    runsAvailable: { a: aRuns.length, b: pooled ? aRuns.length : bRuns.length },
    trialsAvailable: { a: na, b: nb },
    distinctRunDraws,
    counts,
    ...rate(counts),
    confirmed: { counts: confirmedCounts, ...rate(confirmedCounts) },
    confirmation,
    perMetric,
    observedChange,
    noise,
    method: describeMethod({ mode, pooled, comparisons, k, baselineRuns, aRuns, bRuns, na, nb, confirmation }),
  };
}

function describeMethod(o: {
  mode: ValidationReport["mode"];
  pooled: boolean;
  comparisons: number;
  k: number;
  baselineRuns: number;
  aRuns: readonly Results[];
  bRuns: readonly Results[];
  na: number;
  nb: number;
  confirmation: ValidationReport["confirmation"];
}): string {
  const { comparisons, k } = o;
  if (o.mode === "split") {
    return `${comparisons} comparisons of ${k} vs ${k} trials, each drawn without replacement from the ${o.na} trials of one run and split into disjoint halves`;
  }
  if (o.mode === "two-runs") {
    return `${comparisons} comparisons of ${k} vs ${k} trials, drawn without replacement from A's ${o.na} and B's ${o.nb} trials`;
  }
  const trials = (n: number) =>
    n > k ? `${k} of each run's ${n} trials drawn without replacement` : `all ${k} trials of each run`;
  const confirmText =
    o.confirmation === "fresh run"
      ? `; a failing comparison is confirmed with one more distinct run of ${o.pooled ? "the pool" : "B"}`
      : o.confirmation === "unavailable"
        ? "; no spare run for the confirmation rerun"
        : "";
  return o.pooled
    ? `${comparisons} comparisons, each drawing ${o.baselineRuns} baseline run${o.baselineRuns === 1 ? "" : "s"} and 1 candidate run, all distinct, from ${o.aRuns.length} runs (${trials(o.na)})${confirmText}`
    : `${comparisons} comparisons, each drawing ${o.baselineRuns} of A's ${o.aRuns.length} runs as the baseline and 1 of B's ${o.bRuns.length} runs as the candidate (${trials(Math.min(o.na, o.nb))})${confirmText}`;
}

/**
 * The harness on files (what the validation runs write): each side a list of results files (one per run) or
 * baselines (all their runs). A single file per side keeps the older trial-only modes.
 */
export async function validateFiles(
  options: Omit<ValidationInput, "a" | "b"> & { a: string | readonly string[]; b?: string | readonly string[] },
): Promise<ValidationReport> {
  const read = async (files: string | readonly string[]) => {
    const list = typeof files === "string" ? [files] : files;
    const runs: Results[] = [];
    for (const f of list) runs.push(...(await loadRuns(f)));
    return runs;
  };
  const a = await read(options.a);
  const { a: _aFile, b: _bFile, ...rest } = options;
  const input: ValidationInput = { ...rest, a };
  if (options.b !== undefined) input.b = await read(options.b);
  return validateVerdicts(input);
}

/** The report as the CLI prints it: rates first, then what produced them. */
export function formatValidation(r: ValidationReport, labels: { a: string; b?: string } = { a: "A" }): string {
  const pct = (x: number) => formatPercent(x);
  const c = r.counts;
  const f = r.confirmed.counts;
  const kind = r.pooled ? "A/A" : "A vs B";
  const lines = [
    `validate ${kind}: ${r.method}`,
    `  before confirmation: pass ${c.pass}, warn ${c.warn}, fail ${c.fail}: fail ${pct(r.failRate)}, warn-or-fail ${pct(r.warnOrFailRate)}`,
    r.confirmation === "off" || r.confirmation === "unavailable"
      ? `  confirmation rerun: ${r.confirmation}`
      : `  after confirmation (${r.confirmation}): pass ${f.pass}, warn ${f.warn}, fail ${f.fail}: fail ${pct(r.confirmed.failRate)}, warn-or-fail ${pct(r.confirmed.warnOrFailRate)}`,
    r.pooled
      ? `  A/A: false-fail rate ${pct(r.confirmed.failRate)} after confirmation (${pct(r.failRate)} before); target <= 1%`
      : `  if B is A' (A/A): false-fail rate ${pct(r.confirmed.failRate)}; if B is slower (A/B): detected ${pct(r.confirmed.warnOrFailRate)} as warn or fail (target >= 95%), ${pct(r.confirmed.failRate)} as fail (target >= 80%)`,
  ];
  if (r.mode === "runs") lines.push(`  distinct run draws: ${r.distinctRunDraws}`);
  const changes = Object.entries(r.observedChange);
  if (changes.length) {
    lines.push(`  observed change B vs A (all runs): ${changes.map(([m, v]) => `${m} ${formatChange(v)}`).join(", ")}`);
  }
  for (const [side, est] of [
    [labels.a, r.noise.a],
    [labels.b ?? "B", r.noise.b],
  ] as const) {
    const entries = Object.entries(est);
    if (!entries.length) continue;
    const med = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1]!;
    lines.push(
      `  noise in ${side} (${entries[0]![1].runs} runs): run-to-run ${pct(med(entries.map(([, e]) => e.between)))} (median over metrics; max ${pct(Math.max(...entries.map(([, e]) => e.between)))}), trial-to-trial ${pct(med(entries.map(([, e]) => e.within)))}`,
    );
  }
  const worst = Object.entries(r.perMetric)
    .sort(([, x], [, y]) => y.fail + y.warn - (x.fail + x.warn))
    .slice(0, 4);
  if (worst.length) {
    lines.push(`  most flagged: ${worst.map(([m, v]) => `${m} fail ${v.fail} warn ${v.warn}`).join("; ")}`);
  }
  return `${lines.join("\n")}\n`;
}

function toRuns(side: Runs): Results[] {
  return Array.isArray(side) ? [...(side as readonly Results[])] : [side as Results];
}

function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Geometric mean of the runs' medians of one gated statistic (the level the verdict compares). */
function runLevel(runs: readonly Results[], test: string, metric: string, stat: string): number | undefined {
  const medians = runs
    .map((r) => r.tests.find((t) => t.name === test)?.metrics[metric])
    .filter((m): m is MetricResult => m !== undefined)
    .map((m) => median(m.trials.map((t) => t[stat as keyof typeof t])))
    .filter((v) => v > 0);
  if (medians.length === 0) return undefined;
  return Math.exp(medians.reduce((a, v) => a + Math.log(v), 0) / medians.length);
}

/** Between-run and within-run noise of each gated statistic, from a side's runs (needs >= 2 runs). */
function noiseOf(
  runs: readonly Results[],
  names: readonly string[],
  gate: readonly { metric: string; stat: string }[],
): Record<string, RunNoiseEstimate> {
  const out: Record<string, RunNoiseEstimate> = {};
  if (runs.length < 2) return out;
  for (const name of names) {
    for (const g of gate) {
      const perRun = runs
        .map((r) => r.tests.find((t) => t.name === name)?.metrics[g.metric])
        .filter((m): m is MetricResult => m !== undefined)
        .map((m) =>
          m.trials
            .map((t) => t[g.stat as keyof typeof t])
            .filter((v) => v > 0)
            .map(Math.log),
        )
        .filter((v) => v.length > 0);
      if (perRun.length < 2) continue;
      let ss = 0;
      let df = 0;
      for (const v of perRun) {
        const m = v.reduce((a, x) => a + x, 0) / v.length;
        for (const x of v) ss += (x - m) ** 2;
        df += v.length - 1;
      }
      const within2 = df > 0 ? ss / df : 0;
      const medians = perRun.map(median);
      const mm = medians.reduce((a, x) => a + x, 0) / medians.length;
      const spread2 = medians.reduce((a, x) => a + (x - mm) ** 2, 0) / (medians.length - 1);
      const meanN = perRun.reduce((a, v) => a + 1 / v.length, 0) / perRun.length;
      const between2 = Math.max(0, spread2 - (Math.PI / 2) * within2 * meanN);
      out[`${name}/${g.metric}.${g.stat}`] = {
        runs: perRun.length,
        between: Math.expm1(Math.sqrt(between2)),
        within: Math.expm1(Math.sqrt(within2)),
      };
    }
  }
  return out;
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

/** Trials a test has for every metric (metrics can lack a trial when it had no samples); 0 when the test is absent. */
function trialCount(t: TestResult | undefined): number {
  if (!t) return 0;
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

/** One run with K of its trials, drawn without replacement (all of them when it has exactly K). */
function subsetRun(run: Results, names: readonly string[], k: number, random: () => number): Results {
  const n = Math.min(...names.map((name) => trialCount(run.tests.find((t) => t.name === name))));
  return subset(run, names, n > k ? draw(n, k, random) : Array.from({ length: k }, (_, i) => i));
}

/** The run restricted to the named tests and the given trials (same indices in every metric of a test); histograms dropped. */
function subset(run: Results, names: readonly string[], idx: readonly number[]): Results {
  return {
    ...run,
    tests: run.tests
      .filter((t) => names.includes(t.name))
      .map((t) => ({
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
