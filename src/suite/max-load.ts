import type { MaxLoadTest } from "../config/suite-schema.js";
import type { TestResult } from "../measure/results.js";
import type { TestContext } from "./context.js";
import { progressCounter, resolveTasks, type SloOutcome, type StepDigest } from "./load-common.js";
import { NO_RESET_PROVIDED, summarizeResets } from "./probe-reset.js";
import { assembleLoadSteps, checkLoad, runLoadStep, type StepRun, stepParams } from "./ramp.js";

/**
 * The seed's "find the maximum sustainable load": the highest concurrency (or arrival rate) whose step meets the SLO
 * (e.g. e2e p95 <= 1 s and error rate <= 1%), found in few probes:
 *
 * 1. double from `start` until a probe misses the SLO (or `max` passes): this brackets the boundary in log2 steps
 *    (two doublings at once while the step's worst latency is under half its bound: far from the boundary, a probe
 *    that surely passes teaches little); when `start` itself misses, halve instead;
 * 2. bisect the bracket [highest passing, lowest failing] at its geometric midpoint until the failing load is within
 *    `tolerance` of the passing one (concurrency: 1 user);
 * 3. repeat the boundary probe (`confirm`): if the repeat misses, that load becomes the failing end and the search
 *    continues below it (at most twice), so one lucky step cannot set the boundary.
 *
 * Drift: a repeat is also a test of the server. When a repeat's worst SLO ratio differs from the first probe's at the
 * same load by more than `driftTolerance` of the larger one (DRIFT_TOLERANCE, 25%), the server behaved differently at
 * the same load minutes apart (it got slower, or state carried over), so no boundary found with it holds: the search
 * stops and reports the drift with both figures (`end: "drifted"`, `drift`) instead of a boundary. A pass/fail flip
 * whose ratios agree within the tolerance (0.97 then 1.03) is noise at the boundary and moves it down as above.
 * Before every probe the server is put back to an idle, reset state where it can be (probe-reset.ts), so a probe does
 * not inherit the KV cache or queue of the one before it.
 *
 * Every probe is a full load step (warm-up, measured window, drain) with its own results, so the evidence, the curve
 * with its passing and failing points, is in the results, with the probe count and what a linear sweep to the same
 * precision would have needed.
 */

export type ProbePhase = "double" | "halve" | "bisect" | "confirm";

/**
 * A passing probe whose worst SLO ratio is at most this is far from the boundary: the next probe quadruples. Measured on
 * synthetic latency curves (linear, hockey-stick, cliff, M/M/1-like; boundaries 3 to 200): plain doubling needed more
 * probes than an oracle linear sweep; growing x4 while under half the bound needed fewer in most cases.
 */
const FAR_RATIO = 0.5;

/**
 * Two probes at one load agree when their worst SLO ratios differ by at most this share of the larger one. Measured
 * (2026-12-04, tiny model, llama-server --parallel 2, 3 s steps, slots reset between steps) on the 2-core dev machine
 * at load average ~6 from other jobs: six repeats of one load spread their e2e p50 by up to 28% (2 users) and 22%
 * (8 users), p95 by up to 41%. A quarter is past that spread for a p50 SLO on all but such a busy machine (which the
 * busy-machine guard flags anyway); a server that needs a quarter more (or less) time for the same load has changed,
 * and a boundary found across the change holds for neither. Erring means "drifted, no boundary": that trial gives no
 * sustainable value (a target or a comparison on it warns), never a wrong number. Error-rate-only SLOs jump between 0
 * and a few errors and read as drift on such a repeat.
 */
export const DRIFT_TOLERANCE = 0.25;

export interface ProbeVerdict {
  pass: boolean;
  /**
   * Worst SLO ratio of the step: max over bounds of value / bound (latency percentiles, error rate / max error rate).
   * <= 1 passes. Infinity when nothing succeeded.
   */
  ratio: number;
}

export interface ProbePoint extends ProbeVerdict {
  index: number;
  load: number;
  phase: ProbePhase;
}

export interface SearchSettings {
  start: number;
  max: number;
  /** Whole-number loads (concurrency). */
  integer: boolean;
  /** Relative precision of the boundary. */
  tolerance: number;
  confirm: boolean;
  maxProbes: number;
  /** Relative disagreement of two probes at one load that counts as drift (default DRIFT_TOLERANCE). */
  driftTolerance?: number;
}

export type SearchEnd = "converged" | "all-passed" | "none-passed" | "max-probes" | "aborted" | "drifted";

/** A repeat that disagreed with the first probe at its load: the server's behaviour changed during the search. */
export interface SearchDrift {
  load: number;
  first: ProbePoint;
  repeat: ProbePoint;
  /** The tolerance the two were held to. */
  tolerance: number;
  /** |repeat - first| / max of the two worst SLO ratios (Infinity when only one step had a successful request). */
  difference: number;
  /** Where the search stood when the repeat disagreed (not a boundary: evidence only). */
  bracket: { maxPassing?: number; minFailing?: number };
  /** One line with both figures. */
  reason: string;
}

export interface SearchOutcome {
  /** Highest load that met the SLO (and held on its repeat when confirming). Undefined when none did. */
  maxPassing?: number;
  /** Lowest load that missed it. Undefined when everything up to `max` passed. */
  minFailing?: number;
  /** The boundary's repeat passed. */
  confirmed: boolean;
  /** Set when a repeat disagreed with the first probe at its load (`end: "drifted"`): then no boundary is given. */
  drift?: SearchDrift;
  end: SearchEnd;
  probes: ProbePoint[];
  /** The absolute precision the search worked to at the boundary. */
  precision: number;
  /**
   * Probes a linear sweep from `start` in steps of `precision` needs to bracket the same boundary (its first failing
   * load, or `max`), without a repeat: the baseline the search must beat. This sweep is an oracle (its step is set to
   * the precision reached at the boundary, which a real sweep cannot know in advance: a 10-step sweep over [start,
   * max] is only 10% precise when the boundary is near max).
   */
  linearSweepProbes: number;
}

/** Probe: run a step at this load; undefined when the run was interrupted. */
export type Probe = (load: number, phase: ProbePhase) => Promise<ProbeVerdict | undefined>;

/** Precision step at a load: tolerance x load, at least one whole user for concurrency. */
export function precisionAt(s: SearchSettings, load: number): number {
  const rel = s.tolerance * load;
  return s.integer ? Math.max(1, Math.ceil(rel - 1e-9)) : rel;
}

/**
 * Where to split the bracket (lo, hi): the geometric midpoint, since the precision is relative (halving the bracket's
 * ratio, not its width, reaches a 10% bracket in the fewest probes from a doubling's 2x or 4x bracket). Pure.
 */
export function splitPoint(lo: number, hi: number, s: SearchSettings): number {
  let x = Math.sqrt(lo * hi);
  if (s.integer) x = Math.round(x);
  if (x <= lo || x >= hi) x = s.integer ? Math.floor((lo + hi) / 2) : (lo + hi) / 2;
  return x;
}

/** Relative difference of two worst SLO ratios: 0 when equal, Infinity when only one is finite. Pure. */
export function ratioDifference(a: number, b: number): number {
  const fa = Number.isFinite(a);
  const fb = Number.isFinite(b);
  if (!fa || !fb) return fa === fb ? 0 : Number.POSITIVE_INFINITY;
  const top = Math.max(Math.abs(a), Math.abs(b));
  return top === 0 ? 0 : Math.abs(a - b) / top;
}

const ratioText = (r: number) => (Number.isFinite(r) ? r.toFixed(2) : "∞ (no request succeeded)");

function driftOf(
  first: ProbePoint,
  repeat: ProbePoint,
  tolerance: number,
  bracket: SearchDrift["bracket"],
): SearchDrift {
  const difference = ratioDifference(first.ratio, repeat.ratio);
  const verdict = (p: ProbePoint) => (p.pass ? "met" : "missed");
  const apart = Number.isFinite(difference) ? `${(100 * difference).toFixed(0)}% apart` : "not comparable";
  return {
    load: repeat.load,
    first,
    repeat,
    tolerance,
    difference,
    bracket,
    reason:
      `at load ${Number(repeat.load.toPrecision(4))} the first probe (#${first.index + 1}) ${verdict(first)} the SLO with worst ratio ${ratioText(first.ratio)}, ` +
      `its repeat (#${repeat.index + 1}) ${verdict(repeat)} it with ${ratioText(repeat.ratio)}: ${apart}, beyond the ${(100 * tolerance).toFixed(0)}% drift tolerance`,
  };
}

export async function searchMaxLoad(probe: Probe, s: SearchSettings): Promise<SearchOutcome> {
  const probes: ProbePoint[] = [];
  const tolerance = s.driftTolerance ?? DRIFT_TOLERANCE;
  let end: SearchEnd | undefined;
  let drift: SearchDrift | undefined;
  let lo: ProbePoint | undefined;
  let hi: ProbePoint | undefined;
  let confirmed = false;
  const run = async (load: number, phase: ProbePhase): Promise<ProbePoint | undefined> => {
    if (probes.length >= s.maxProbes) {
      end = "max-probes";
      return undefined;
    }
    const v = await probe(load, phase);
    if (!v) {
      end = "aborted";
      return undefined;
    }
    const p: ProbePoint = { index: probes.length, load, phase, ...v };
    const first = probes.find((q) => q.load === load);
    probes.push(p);
    // A repeat that disagrees beyond the tolerance: the server changed during the search; stop here.
    if (first && ratioDifference(first.ratio, p.ratio) > tolerance) {
      drift = driftOf(first, p, tolerance, {
        ...(lo ? { maxPassing: lo.load } : {}),
        ...(hi ? { minFailing: hi.load } : {}),
      });
      end = "drifted";
      return undefined;
    }
    return p;
  };

  const finish = (): SearchOutcome => {
    const precision = precisionAt(s, lo?.load ?? s.start);
    // A sweep start, start + precision, ... stops at its first failing load: past the boundary, or at max.
    const linear = !lo
      ? 1
      : hi
        ? Math.floor(Math.abs(lo.load - s.start) / precision + 1e-9) + 2
        : Math.floor((s.max - s.start) / precision + 1e-9) + 1;
    const out: SearchOutcome = { confirmed, end: end ?? "converged", probes, precision, linearSweepProbes: linear };
    if (drift) {
      // No boundary: the probes that set one measured a server that was not the same throughout.
      out.confirmed = false;
      out.drift = drift;
      return out;
    }
    if (lo) out.maxPassing = lo.load;
    if (hi) out.minFailing = hi.load;
    return out;
  };

  // 1. Double until a probe fails (or max passes); halve when the start already fails.
  let load = Math.min(s.start, s.max);
  for (;;) {
    const p = await run(load, "double");
    if (!p) return finish();
    if (!p.pass) {
      hi = p;
      break;
    }
    lo = p;
    if (load >= s.max) break;
    const grow = p.ratio <= FAR_RATIO ? 4 : 2;
    load = Math.min(s.max, s.integer ? Math.round(load * grow) : load * grow);
  }
  if (!lo && hi) {
    const floor = s.integer ? 1 : s.start / 64;
    for (;;) {
      const next = s.integer ? Math.floor(hi.load / 2) : hi.load / 2;
      if (next < floor || next >= hi.load) {
        end = "none-passed";
        return finish();
      }
      const p = await run(next, "halve");
      if (!p) return finish();
      if (p.pass) {
        lo = p;
        break;
      }
      hi = p;
    }
  }

  // 2. Bisect to precision.
  const bisect = async (): Promise<boolean> => {
    while (lo && hi && hi.load - lo.load > precisionAt(s, lo.load)) {
      const x = splitPoint(lo.load, hi.load, s);
      if (x <= lo.load || x >= hi.load) break;
      const p = await run(x, "bisect");
      if (!p) return false;
      if (p.pass) lo = p;
      else hi = p;
    }
    return true;
  };
  if (!(await bisect())) return finish();

  // 3. Confirm the boundary by a repeat; a failed repeat moves it down.
  if (s.confirm) {
    for (let attempt = 0; attempt < 2 && lo; attempt++) {
      const p = await run(lo.load, "confirm");
      if (!p) return finish();
      if (p.pass) {
        confirmed = true;
        break;
      }
      hi = p;
      const below = probes.filter((q) => q.pass && q.load < p.load).sort((a, b) => b.load - a.load)[0];
      lo = below;
      if (!lo) {
        end = "none-passed";
        return finish();
      }
      if (!(await bisect())) return finish();
    }
  }
  if (!hi) end = "all-passed";
  return finish();
}

/** The SLO outcome of a step as the search reads it. */
export function verdictOf(slo: SloOutcome | undefined): ProbeVerdict {
  if (!slo) return { pass: false, ratio: Number.POSITIVE_INFINITY };
  let ratio = 0;
  for (const c of slo.checks) {
    const r = c.bound > 0 ? c.value / c.bound : c.value > 0 ? Number.POSITIVE_INFINITY : 0;
    ratio = Math.max(ratio, Number.isFinite(c.value) ? r : Number.POSITIVE_INFINITY);
  }
  return { pass: slo.pass, ratio };
}

export async function runMaxLoadTest(ctx: TestContext, test: MaxLoadTest, trials: number): Promise<TestResult> {
  checkLoad(ctx, test.variable, test.start, "start");
  checkLoad(ctx, test.variable, test.max, "max");
  const { tasks, fallbacks } = resolveTasks(ctx, test.tasks, {
    ...(test.api ? { api: test.api } : {}),
    promptTokens: test.promptTokens,
    ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
  });
  const settings: SearchSettings = {
    start: test.start,
    max: test.max,
    integer: test.variable === "concurrency",
    tolerance: test.tolerance,
    confirm: test.confirm,
    maxProbes: test.maxProbes,
  };
  const onRecord = progressCounter(ctx);
  const runs: StepRun[] = [];
  const headline: StepRun[] = [];
  const searches: SearchRecord[] = [];
  const sustainable: number[] = [];
  for (let trial = 0; trial < trials && !ctx.signal.aborted; trial++) {
    const trialRuns: StepRun[] = [];
    const labels: string[] = [];
    const probe: Probe = async (load, phase) => {
      if (ctx.signal.aborted) return undefined;
      const repeat = trialRuns.filter((r) => r.digest.load === load).length;
      const base = `${test.variable}_${Number(load.toPrecision(4))}`;
      const label = repeat ? `${base}_repeat${repeat}` : base;
      const run = await runLoadStep(ctx, test, tasks, { load, trial, phase, label, onRecord });
      if (ctx.signal.aborted) return undefined;
      trialRuns.push(run);
      labels.push(label);
      return verdictOf(run.digest.slo);
    };
    const outcome = await searchMaxLoad(probe, settings);
    runs.push(...trialRuns);
    const boundaryRuns = trialRuns.filter((r) => r.digest.load === outcome.maxPassing && r.digest.slo?.pass);
    headline.push(...(boundaryRuns.length ? boundaryRuns : trialRuns.slice(0, 1)));
    // A drifted search has no boundary: its trial gives no sustainable value (0 would read as a collapse).
    if (!outcome.drift) sustainable.push(outcome.maxPassing ?? 0);
    searches.push(searchRecord(trial, outcome, labels, trialRuns));
  }
  const steps: StepDigest[] = runs.map((r) => r.digest);
  // Every trial drifted: the metric is there with no value (NaN, null in JSON), so a target on it warns "no value
  // measured" and a baseline comparison "no value in this run" (an absent metric would make a target a bad suite).
  const perTrial = searches.length && !sustainable.length ? [Number.NaN] : sustainable;
  return assembleLoadSteps(ctx, {
    kind: "max-load",
    variable: test.variable,
    params: {
      ...stepParams(test, tasks, fallbacks),
      start: test.start,
      max: test.max,
      tolerance: test.tolerance,
      confirm: test.confirm,
      maxProbes: test.maxProbes,
    },
    runs,
    headline,
    trials,
    extra: {
      steps,
      searches,
      stateReset: summarizeResets(
        ctx.probeReset ?? NO_RESET_PROVIDED,
        steps.map((d) => d.reset),
      ),
    },
    sustainable: perTrial,
  });
}

/** A probe as the results keep it: with its step's label (the scenario name). */
export type LabelledProbe = ProbePoint & { label: string };

/** One trial's search in `extra.searches`; the drift's two probes carry their steps' SLO lines (both figures). */
export type SearchRecord = Omit<SearchOutcome, "probes" | "drift"> & {
  trial: number;
  probes: LabelledProbe[];
  drift?: Omit<SearchDrift, "first" | "repeat"> & {
    first: LabelledProbe & { slo?: string };
    repeat: LabelledProbe & { slo?: string };
  };
};

function searchRecord(trial: number, outcome: SearchOutcome, labels: string[], runs: StepRun[]): SearchRecord {
  const labelled = (p: ProbePoint): LabelledProbe & { slo?: string } => {
    const slo = runs[p.index]?.digest.slo?.reason;
    return { ...p, label: labels[p.index] ?? "", ...(slo ? { slo } : {}) };
  };
  const { drift, probes, ...rest } = outcome;
  return {
    trial,
    ...rest,
    probes: probes.map((p) => ({ ...p, label: labels[p.index] ?? "" })),
    ...(drift ? { drift: { ...drift, first: labelled(drift.first), repeat: labelled(drift.repeat) } } : {}),
  };
}
