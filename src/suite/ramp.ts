import type { RampTest, Slo } from "../config/suite-schema.js";
import { METRICS } from "../measure/metrics.js";
import type { RequestRecord } from "../measure/record.js";
import type { ScenarioResult, TestResult } from "../measure/results.js";
import { mergeSelfChecks } from "../measure/self-check.js";
import { BadInputError } from "../util/errors.js";
import type { LoadTask } from "../workload/schedulers/tasks.js";
import { thinkTimeOf } from "../workload/schedulers/tasks.js";
import { assembleTest } from "./assemble.js";
import type { TestContext } from "./context.js";
import {
  aggregateOf,
  digestStep,
  driveClosed,
  driveOpen,
  figuresOf,
  goodputMetric,
  type LoadVariable,
  progressCounter,
  resolveTasks,
  type StepDigest,
  stepLabel,
  stepSaturation,
} from "./load-common.js";
import { NO_RESET_PROVIDED, summarizeResets } from "./probe-reset.js";

/**
 * The seed's Task 2.1 (gradual load increase), done as a ramp of independent steps: each step runs its load
 * (concurrency = closed-loop users, or rate = open-loop arrivals/s) for a warm-up and a measured duration, then drains,
 * and reports mean/p50/p95/p99 latency, TTFT, error rate, throughput and goodput. The ramp stops early when a step
 * misses the SLO or when the server is saturated: latency and in-flight requests rising while throughput does not, in
 * two steps in a row (or, for rates, outstanding requests and latency trending up within one step).
 */

/** The fields ramp and max-load share: how one step is run. */
export type StepShape = Pick<
  RampTest,
  | "variable"
  | "stepDurationS"
  | "stepWarmupS"
  | "thinkTimeS"
  | "arrivals"
  | "burstiness"
  | "cv"
  | "maxConcurrency"
  | "whenFull"
  | "lateMs"
  | "drainTimeoutS"
  | "promptTokens"
  | "tasks"
  | "api"
  | "maxTokens"
> & { slo?: Slo };

export interface StepRun {
  digest: StepDigest;
  scenario: ScenarioResult;
  measured: RequestRecord[];
  windowNs: number;
}

/** Runs one load step and reads it. */
export async function runLoadStep(
  ctx: TestContext,
  shape: StepShape,
  tasks: LoadTask[],
  a: { load: number; trial: number; phase: string; label?: string; onRecord?: (r: RequestRecord) => void },
): Promise<StepRun> {
  const label = a.label ?? stepLabel(shape.variable, a.load);
  // Nothing from the step before may carry into this one: wait for idle, reset the server where it can be (or say why
  // not, in the digest).
  const reset = await (ctx.probeReset ?? NO_RESET_PROVIDED).beforeProbe(ctx.endpoint, ctx.signal).catch((err) => {
    if (ctx.signal.aborted) return undefined;
    throw err;
  });
  const common = {
    tasks,
    durationMs: shape.stepDurationS * 1000,
    warmupMs: shape.stepWarmupS * 1000,
    drainTimeoutMs: shape.drainTimeoutS * 1000,
    trial: a.trial,
    scenario: label,
    ...(a.onRecord ? { onRecord: a.onRecord } : {}),
  };
  const driven =
    shape.variable === "concurrency"
      ? await driveClosed(ctx, { ...common, users: a.load, thinkTime: thinkTimeOf(shape.thinkTimeS) })
      : await driveOpen(ctx, {
          ...common,
          pattern: shape.arrivals,
          ratePerS: a.load,
          ...(shape.burstiness === undefined ? {} : { burstiness: shape.burstiness }),
          ...(shape.cv === undefined ? {} : { cv: shape.cv }),
          ...(shape.maxConcurrency === undefined ? {} : { maxConcurrency: shape.maxConcurrency }),
          whenFull: shape.whenFull,
        });
  const { digest, scenario, measured } = digestStep(
    {
      label,
      variable: shape.variable,
      load: a.load,
      trial: a.trial,
      phase: a.phase,
      lateMs: shape.lateMs,
      ...(shape.slo ? { slo: shape.slo } : {}),
    },
    driven,
  );
  if (reset) digest.reset = reset;
  return { digest, scenario, measured, windowNs: driven.outcome.windowNs };
}

/** Validates a step load for its variable (concurrency is a whole number of users). */
export function checkLoad(ctx: TestContext, variable: LoadVariable, load: number, field: string): void {
  if (variable === "concurrency" && !Number.isInteger(load)) {
    throw new BadInputError(`concurrency must be a whole number of users, got ${load}`, {
      subject: `tests: ${ctx.testName}: ${field}`,
      hint: "e.g. steps: [1, 2, 4, 8]; use variable: rate for fractional arrivals per second",
    });
  }
}

/** The loads a ramp steps through: `steps`, else `range`, else [1, 2, 4, 8]. */
export function rampLoads(test: Pick<RampTest, "steps" | "range">): number[] {
  if (test.steps?.length) return [...test.steps];
  if (test.range) {
    const { start, stop, step } = test.range;
    const out: number[] = [];
    // Integer arithmetic on the index avoids 0.1 + 0.2 drift in fractional rate ranges.
    for (let i = 0; start + i * step <= stop + 1e-9; i++) out.push(Number((start + i * step).toPrecision(12)));
    return out;
  }
  return [1, 2, 4, 8];
}

export function stepParams(test: StepShape, tasks: LoadTask[], fallbacks: string[]): Record<string, unknown> {
  return {
    variable: test.variable,
    stepDurationS: test.stepDurationS,
    stepWarmupS: test.stepWarmupS,
    thinkTimeS: test.thinkTimeS,
    drainTimeoutS: test.drainTimeoutS,
    ...(test.variable === "rate"
      ? {
          arrivals: test.arrivals,
          ...(test.burstiness === undefined ? {} : { burstiness: test.burstiness }),
          ...(test.cv === undefined ? {} : { cv: test.cv }),
          ...(test.maxConcurrency === undefined ? {} : { maxConcurrency: test.maxConcurrency }),
          whenFull: test.whenFull,
        }
      : {}),
    tasks: tasks.map((t) => ({ ...t })),
    ...(fallbacks.length ? { apiFallbacks: fallbacks } : {}),
    ...(test.slo ? { slo: test.slo } : {}),
  };
}

/** The sustainable-load metric of a ramp or search: highest passing load (0 when none passed). */
export function sustainableMetric(variable: LoadVariable, perTrial: number[]) {
  return variable === "concurrency"
    ? { max_sustainable_concurrency: aggregateOf(METRICS.max_sustainable_concurrency.unit, "higher", perTrial) }
    : { max_sustainable_rps: aggregateOf(METRICS.max_sustainable_rps.unit, "higher", perTrial) };
}

export interface RampStop {
  trial: number;
  afterStep: string;
  reason: string;
  kind: "slo" | "saturation";
}

export async function runRampTest(ctx: TestContext, test: RampTest, trials: number): Promise<TestResult> {
  const loads = rampLoads(test);
  for (const [i, l] of loads.entries()) checkLoad(ctx, test.variable, l, test.steps ? `steps[${i}]` : "range");
  const { tasks, fallbacks } = resolveTasks(ctx, test.tasks, {
    ...(test.api ? { api: test.api } : {}),
    promptTokens: test.promptTokens,
    ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
  });
  const onRecord = progressCounter(ctx);
  const steps: StepDigest[] = [];
  const runs: StepRun[] = [];
  const stops: RampStop[] = [];
  const sustainable: number[] = [];
  for (let trial = 0; trial < trials && !ctx.signal.aborted; trial++) {
    let prev: StepDigest | undefined;
    let prevAcross = false;
    let best = 0;
    for (const load of loads) {
      if (ctx.signal.aborted) break;
      const run = await runLoadStep(ctx, test, tasks, { load, trial, phase: "ramp", onRecord });
      const d = run.digest;
      // Rates: the within-step trend is a statistical test of its own and stops at once. Across steps (concurrency,
      // and rates whose trend did not fire) one noisy step can look saturated on a shared machine, so a stop needs two
      // saturated steps in a row.
      let stopForSaturation = !!d.saturation?.saturated;
      if (prev && !d.saturation?.saturated) {
        d.saturation = stepSaturation(figuresOf(prev), figuresOf(d));
        stopForSaturation = d.saturation.saturated && prevAcross;
        if (d.saturation.saturated && !prevAcross) d.saturation.reason += " (first sign: the next step must agree)";
        prevAcross = d.saturation.saturated;
      }
      steps.push(d);
      runs.push(run);
      if (d.slo?.pass) best = Math.max(best, load);
      prev = d;
      if (ctx.signal.aborted) break;
      if (test.slo && test.stopOnSloBreach && d.slo && !d.slo.pass) {
        stops.push({ trial, afterStep: d.label, reason: `SLO ${d.slo.reason}`, kind: "slo" });
        break;
      }
      if (test.stopOnSaturation && stopForSaturation && d.saturation) {
        stops.push({ trial, afterStep: d.label, reason: d.saturation.reason, kind: "saturation" });
        break;
      }
    }
    sustainable.push(best);
  }
  return assembleLoadSteps(ctx, {
    kind: "ramp",
    variable: test.variable,
    params: {
      ...stepParams(test, tasks, fallbacks),
      steps: loads,
      stopOnSloBreach: test.stopOnSloBreach,
      stopOnSaturation: test.stopOnSaturation,
    },
    runs,
    trials,
    extra: {
      steps,
      ...(stops.length ? { stoppedEarly: stops } : {}),
      stateReset: summarizeResets(
        ctx.probeReset ?? NO_RESET_PROVIDED,
        steps.map((d) => d.reset),
      ),
    },
    ...(test.slo ? { sustainable } : {}),
  });
}

/**
 * A stepped test's TestResult: headline metrics over every measured step (or only `headline` runs), one scenario per
 * step (full metrics and histograms), the step digests in `extra`, and the client self-check over all steps.
 */
export function assembleLoadSteps(
  ctx: TestContext,
  a: {
    kind: string;
    variable: LoadVariable;
    params: Record<string, unknown>;
    runs: StepRun[];
    /** Runs whose records make the headline metrics (default: all). */
    headline?: StepRun[];
    trials: number;
    extra: Record<string, unknown>;
    sustainable?: number[];
  },
): TestResult {
  const headline = a.headline ?? a.runs;
  const windowsNs = Array.from({ length: a.trials }, (_, t) =>
    headline.filter((r) => r.digest.trial === t).reduce((s, r) => s + r.windowNs, 0),
  );
  const result = assembleTest({
    name: ctx.testName,
    kind: a.kind,
    params: a.params,
    records: headline.flatMap((r) => r.measured),
    trials: a.trials,
    windowsNs,
    ...(ctx.signal.aborted ? { aborted: String(ctx.signal.reason ?? "aborted") } : {}),
  });
  result.scenarios = a.runs.map((r) =>
    a.trials > 1 ? { ...r.scenario, name: `${r.scenario.name}_trial${r.digest.trial}` } : r.scenario,
  );
  const goodput = Array.from({ length: a.trials }, (_, t) => {
    const rs = headline.filter((r) => r.digest.trial === t && r.digest.goodputRps !== undefined);
    const w = rs.reduce((s, r) => s + r.windowNs, 0);
    return w > 0 ? rs.reduce((s, r) => s + (r.digest.goodputRps ?? 0) * r.windowNs, 0) / w : Number.NaN;
  }).filter(Number.isFinite);
  if (goodput.length) result.metrics.goodput_rps = goodputMetric(goodput);
  if (a.sustainable?.length) Object.assign(result.metrics, sustainableMetric(a.variable, a.sustainable));
  const selfCheck = mergeSelfChecks(a.runs.map((r) => r.digest.selfCheck));
  result.extra = { variable: a.variable, ...a.extra, ...(selfCheck ? { selfCheck } : {}) };
  return result;
}
