import type { MaxLoadTest } from "../config/suite-schema.js";
import type { TestResult } from "../measure/results.js";
import type { TestContext } from "./context.js";
import { progressCounter, resolveTasks, type SloOutcome, type StepDigest } from "./load-common.js";
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
}

export type SearchEnd = "converged" | "all-passed" | "none-passed" | "max-probes" | "aborted";

export interface SearchOutcome {
  /** Highest load that met the SLO (and held on its repeat when confirming). Undefined when none did. */
  maxPassing?: number;
  /** Lowest load that missed it. Undefined when everything up to `max` passed. */
  minFailing?: number;
  /** The boundary's repeat passed. */
  confirmed: boolean;
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

export async function searchMaxLoad(probe: Probe, s: SearchSettings): Promise<SearchOutcome> {
  const probes: ProbePoint[] = [];
  let end: SearchEnd | undefined;
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
    probes.push(p);
    return p;
  };
  let lo: ProbePoint | undefined;
  let hi: ProbePoint | undefined;
  let confirmed = false;

  const finish = (): SearchOutcome => {
    const precision = precisionAt(s, lo?.load ?? s.start);
    // A sweep start, start + precision, ... stops at its first failing load: past the boundary, or at max.
    const linear = !lo
      ? 1
      : hi
        ? Math.floor(Math.abs(lo.load - s.start) / precision + 1e-9) + 2
        : Math.floor((s.max - s.start) / precision + 1e-9) + 1;
    const out: SearchOutcome = { confirmed, end: end ?? "converged", probes, precision, linearSweepProbes: linear };
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
  const searches: Array<
    Omit<SearchOutcome, "probes"> & { trial: number; probes: Array<ProbePoint & { label: string }> }
  > = [];
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
    sustainable.push(outcome.maxPassing ?? 0);
    searches.push({ trial, ...outcome, probes: outcome.probes.map((p, i) => ({ ...p, label: labels[i] ?? "" })) });
  }
  const steps: StepDigest[] = runs.map((r) => r.digest);
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
    extra: { steps, searches },
    sustainable,
  });
}
