import type { Slo, TaskSpec } from "../config/suite-schema.js";
import { NS_PER_MS } from "../measure/clock.js";
import { histogramOf, valueAtPercentile } from "../measure/histogram.js";
import { computeMetrics, countRequests, METRICS, requestValues } from "../measure/metrics.js";
import type { RequestRecord } from "../measure/record.js";
import type { MetricResult, RequestCounts, ScenarioResult } from "../measure/results.js";
import { type SelfCheckResult, startSelfCheck } from "../measure/self-check.js";
import type { ApiKind } from "../target/types.js";
import { BadInputError } from "../util/errors.js";
import { createRng, type Rng } from "../util/rng.js";
import { makePrompt } from "../workload/prompts.js";
import { type ArrivalPattern, createArrivals } from "../workload/schedulers/arrivals.js";
import { type ClosedLoopOptions, runClosedLoop } from "../workload/schedulers/closed-loop.js";
import { type OpenLoopOptions, type OpenLoopOutcome, runOpenLoop } from "../workload/schedulers/open-loop.js";
import { createTaskPicker, type LoadTask, type ThinkTime } from "../workload/schedulers/tasks.js";
import type { LoopOutcome, SendFn } from "../workload/schedulers/types.js";
import { sendAndRecord, type TestContext } from "./context.js";
import type { ProbeResetOutcome } from "./probe-reset.js";

/**
 * What the load tests (ramp, max-load, stress, open-loop) share: turning suite tasks into requests, driving a closed or
 * open loop with the client self-check around it, and reading a step's records into the figures a ramp, a search and
 * a report need (latency, goodput, SLO, schedule, in-flight, saturation). Recording only: formatting is in
 * src/report/load-report.ts.
 */

// ---------------------------------------------------------------------------------------------------------------
// Tasks and sending

/**
 * Suite task specs -> tasks for the schedulers. A task asking for llama-server's `/completion` API on a target that
 * does not serve it (the in-process target serves only the OpenAI APIs) runs as `openai-completions`, the same raw
 * prompt completion; the fallback is recorded in the test's params. Any other unserved API is a bad suite.
 */
export function resolveTasks(
  ctx: TestContext,
  specs: readonly TaskSpec[] | undefined,
  defaults: { api?: ApiKind; promptTokens: number; maxTokens?: number },
): { tasks: LoadTask[]; fallbacks: string[] } {
  const fallbacks: string[] = [];
  const list: TaskSpec[] = specs?.length ? [...specs] : [{ name: "default", weight: 1 }];
  const tasks = list.map((s, i) => {
    const wanted = s.api ?? defaults.api ?? ctx.request.api;
    let api = wanted;
    if (!ctx.endpoint.apis.includes(wanted)) {
      if (wanted === "completion" && ctx.endpoint.apis.includes("openai-completions")) {
        api = "openai-completions";
        fallbacks.push(`${s.name}: completion -> openai-completions (the target does not serve /completion)`);
      } else {
        throw new BadInputError(
          `the target does not serve the \`${wanted}\` API (it serves ${ctx.endpoint.apis.join(", ")})`,
          {
            subject: `tests: ${ctx.testName}: tasks[${i}].api`,
            hint: `use api: ${ctx.endpoint.apis[ctx.endpoint.apis.length - 1]}`,
          },
        );
      }
    }
    const task: LoadTask = {
      name: s.name,
      weight: s.weight,
      api,
      promptTokens: s.promptTokens ?? defaults.promptTokens,
      maxTokens: s.maxTokens ?? defaults.maxTokens ?? ctx.request.maxTokens,
    };
    if (s.prompt !== undefined) task.prompt = s.prompt;
    return task;
  });
  return { tasks, fallbacks };
}

export interface SenderOptions {
  trial: number;
  /** Mark records as open loop (corrected latencies, schedule lag). */
  openLoop: boolean;
  /** Scenario of every record (a ramp step); default: the task's name. */
  scenario?: string;
}

/** A scheduler's SendFn over StreamClient: builds the request of a task, streams it, writes its record. */
export function taskSender(ctx: TestContext, o: SenderOptions): SendFn<LoadTask> {
  return (job, signal) =>
    sendAndRecord(ctx, {
      api: job.task.api,
      // Synthesized prompts are distinct per request, so the server's prompt cache cannot shorten a TTFT.
      prompt: job.task.prompt ?? makePrompt(job.task.promptTokens, ctx.rng),
      maxTokens: job.task.maxTokens,
      scenario: o.scenario ?? job.task.name,
      trial: o.trial,
      measured: job.measured,
      ...(job.intendedStartNs === undefined ? {} : { intendedStartNs: job.intendedStartNs }),
      signal,
      ...(o.openLoop ? { openLoop: true } : {}),
    });
}

/** A child RNG for one schedule, so arrival times and task picks do not depend on how requests interleave. */
export function childRng(ctx: TestContext): Rng {
  return createRng(Math.floor(ctx.rng.next() * 0x1_0000_0000));
}

/** Counts finished requests for the progress display across a test's loops. */
export function progressCounter(ctx: TestContext): (r: RequestRecord) => void {
  let done = 0;
  return () => ctx.onRequestDone?.(++done, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Driving loops

export interface ClosedDrive {
  users: number;
  tasks: LoadTask[];
  thinkTime: ThinkTime;
  spawnRatePerS?: number;
  iterations?: number;
  durationMs?: number;
  warmupMs?: number;
  warmupRequests?: number;
  drainTimeoutMs: number;
  trial: number;
  scenario?: string;
  stopSignal?: AbortSignal;
  onRecord?: (r: RequestRecord) => void;
}

export interface OpenDrive {
  pattern: ArrivalPattern;
  ratePerS: number;
  burstiness?: number;
  cv?: number;
  tasks: LoadTask[];
  durationMs?: number;
  requests?: number;
  warmupMs?: number;
  warmupRequests?: number;
  maxConcurrency?: number;
  whenFull?: "queue" | "drop";
  drainTimeoutMs: number;
  spinNs?: number;
  trial: number;
  scenario?: string;
  stopSignal?: AbortSignal;
  onRecord?: (r: RequestRecord) => void;
}

export interface Driven {
  outcome: LoopOutcome | OpenLoopOutcome;
  selfCheck: SelfCheckResult;
}

export async function driveClosed(ctx: TestContext, d: ClosedDrive): Promise<Driven> {
  const rng = childRng(ctx);
  const opts: ClosedLoopOptions<LoadTask> = {
    users: d.users,
    pick: createTaskPicker(d.tasks, rng),
    thinkTime: d.thinkTime,
    rng,
    send: taskSender(ctx, { trial: d.trial, openLoop: false, ...(d.scenario ? { scenario: d.scenario } : {}) }),
    signal: ctx.signal,
    drainTimeoutMs: d.drainTimeoutMs,
    ...pick(d, ["spawnRatePerS", "iterations", "durationMs", "warmupMs", "warmupRequests", "stopSignal", "onRecord"]),
  };
  const check = startSelfCheck();
  const outcome = await runClosedLoop(opts);
  return { outcome, selfCheck: check.stop() };
}

export async function driveOpen(ctx: TestContext, d: OpenDrive): Promise<Driven & { outcome: OpenLoopOutcome }> {
  const rng = childRng(ctx);
  const arrivals = createArrivals(
    {
      pattern: d.pattern,
      ratePerS: d.ratePerS,
      ...(d.burstiness === undefined ? {} : { burstiness: d.burstiness }),
      ...(d.cv === undefined ? {} : { cv: d.cv }),
    },
    rng,
  );
  const opts: OpenLoopOptions<LoadTask> = {
    arrivals,
    pick: createTaskPicker(d.tasks, rng),
    send: taskSender(ctx, { trial: d.trial, openLoop: true, ...(d.scenario ? { scenario: d.scenario } : {}) }),
    signal: ctx.signal,
    drainTimeoutMs: d.drainTimeoutMs,
    ...pick(d, [
      "durationMs",
      "requests",
      "warmupMs",
      "warmupRequests",
      "maxConcurrency",
      "whenFull",
      "spinNs",
      "stopSignal",
      "onRecord",
    ]),
  };
  const check = startSelfCheck();
  const outcome = await runOpenLoop(opts);
  check.addSpinNs(outcome.schedule.pacer.spinNs);
  return { outcome, selfCheck: check.stop() };
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading a step's records

export interface Quantiles {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
}

/** A value at percentile p (0..100) of per-request values, through the one HDR module, clamped to the data. */
export function percentileOf(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return Math.min(max, Math.max(min, valueAtPercentile(histogramOf(values), p)));
}

function quantiles(m: MetricResult | undefined): Quantiles | undefined {
  if (!m) return undefined;
  const s = m.summary;
  return { count: s.count, mean: s.mean, p50: s.p50, p95: s.p95, p99: s.p99 };
}

/** Per-request latency a request is judged on: from the intended start in an open loop (what the user waited). */
function judgedLatencies(r: RequestRecord): { ttftMs?: number; tpotMs?: number; e2eMs?: number } {
  const v = requestValues(r);
  const num = (x: number | number[] | undefined) => (typeof x === "number" ? x : undefined);
  const out: { ttftMs?: number; tpotMs?: number; e2eMs?: number } = {};
  const ttft = num(r.openLoop ? v.ttft_corrected_ms : v.ttft_ms);
  const e2e = num(r.openLoop ? v.e2e_corrected_ms : v.e2e_ms);
  const tpot = num(v.tpot_ms);
  if (ttft !== undefined) out.ttftMs = ttft;
  if (e2e !== undefined) out.e2eMs = e2e;
  if (tpot !== undefined) out.tpotMs = tpot;
  return out;
}

const SLO_BOUNDS = [
  ["ttftMs", "ttft"],
  ["tpotMs", "tpot"],
  ["e2eMs", "e2e"],
] as const;

/** True when a request succeeded and met every latency bound of the SLO (vLLM's goodput definition). */
export function meetsSlo(r: RequestRecord, slo: Slo): boolean {
  if (!r.ok) return false;
  const lat = judgedLatencies(r);
  for (const [key] of SLO_BOUNDS) {
    const bound = slo[key];
    if (bound === undefined) continue;
    const v = lat[key];
    // tpot needs two tokens; a one-token answer has none and is not held to it (vLLM counts it as tpot 0).
    if (v === undefined) {
      if (key === "tpotMs") continue;
      return false;
    }
    if (v > bound) return false;
  }
  return true;
}

export interface SloCheck {
  /** `e2e p95`, `error rate`. */
  what: string;
  value: number;
  bound: number;
  pass: boolean;
}

export interface SloOutcome {
  pass: boolean;
  checks: SloCheck[];
  /** One line: what failed, or that all held. */
  reason: string;
}

/**
 * A load step meets the SLO when its error rate (failed requests, plus arrivals the open loop dropped or never sent)
 * is at most `maxErrorRate` and the chosen percentile of every bounded latency is within its bound (open loops:
 * latencies from the intended start). A step with no successful request fails.
 */
export function evaluateSlo(measured: RequestRecord[], slo: Slo, notSent = 0): SloOutcome {
  const attempted = measured.length + notSent;
  const failed = measured.filter((r) => !r.ok).length + notSent;
  const errorRate = attempted ? failed / attempted : 1;
  const checks: SloCheck[] = [
    { what: "error rate", value: errorRate, bound: slo.maxErrorRate, pass: errorRate <= slo.maxErrorRate },
  ];
  const ok = measured.filter((r) => r.ok);
  const lats = ok.map(judgedLatencies);
  for (const [key, label] of SLO_BOUNDS) {
    const bound = slo[key];
    if (bound === undefined) continue;
    const values = lats.map((l) => l[key]).filter((v): v is number => v !== undefined);
    const value = percentileOf(values, slo.percentile);
    checks.push({ what: `${label} p${slo.percentile}`, value, bound, pass: Number.isFinite(value) && value <= bound });
  }
  const none = ok.length === 0;
  const pass = !none && checks.every((c) => c.pass);
  const fmt = (c: SloCheck) =>
    c.what === "error rate"
      ? `error rate ${(100 * c.value).toFixed(1)}% (≤ ${(100 * c.bound).toFixed(1)}%)`
      : `${c.what} ${Number.isFinite(c.value) ? c.value.toFixed(0) : "n/a"} ms (≤ ${c.bound} ms)`;
  const failedChecks = checks.filter((c) => !c.pass);
  const reason = none
    ? measured.length === 0
      ? "no request started in the measured window (requests outlast the step: lengthen stepDurationS)"
      : "no request succeeded"
    : pass
      ? `met: ${checks.map(fmt).join(", ")}`
      : `missed: ${failedChecks.map(fmt).join(", ")}`;
  return { pass, checks, reason };
}

export function goodputRps(measured: RequestRecord[], slo: Slo, windowNs: number): number {
  if (windowNs <= 0) return 0;
  return measured.filter((r) => meetsSlo(r, slo)).length / (windowNs / 1e9);
}

/** The goodput metric in the results' metric shape (one value per trial). */
export function goodputMetric(perTrial: number[]): MetricResult {
  const def = METRICS.goodput_rps;
  return aggregateOf(def.unit, def.better, perTrial, def.aliases);
}

export function aggregateOf(
  unit: string,
  better: "lower" | "higher",
  perTrial: number[],
  aliases?: MetricResult["aliases"],
): MetricResult {
  const point = (v: number) => ({ count: 1, mean: v, stddev: 0, min: v, p50: v, p90: v, p95: v, p99: v, max: v });
  const n = perTrial.length;
  const mean = perTrial.reduce((s, v) => s + v, 0) / Math.max(1, n);
  const sorted = [...perTrial].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] ?? Number.NaN;
  const sd = n > 1 ? Math.sqrt(perTrial.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return {
    unit,
    better,
    summary:
      n === 1
        ? point(perTrial[0]!)
        : {
            count: n,
            mean,
            stddev: sd,
            min: sorted[0] ?? Number.NaN,
            p50: at(0.5),
            p90: at(0.9),
            p95: at(0.95),
            p99: at(0.99),
            max: sorted[n - 1] ?? Number.NaN,
          },
    trials: perTrial.map(point),
    ...(aliases ? { aliases } : {}),
  };
}

/**
 * Requests in flight over a window, from the records: the mean by Little's law (sum of time each request spent in
 * flight inside the window / window) and the peak by a sweep over start/end events. In an open loop "in flight" counts
 * from the intended start: an arrival waiting behind a concurrency cap is work the system owes.
 */
export function inFlightStats(records: RequestRecord[], fromNs: number, toNs: number): { mean: number; max: number } {
  const events: Array<[number, number]> = [];
  let busyNs = 0;
  for (const r of records) {
    const s = r.openLoop ? r.intendedStartNs : r.startNs;
    events.push([s, 1], [r.endNs, -1]);
    const a = Math.max(s, fromNs);
    const b = Math.min(r.endNs, toNs);
    if (b > a) busyNs += b - a;
  }
  events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of events) {
    cur += d;
    if (cur > max) max = cur;
  }
  const window = toNs - fromNs;
  return { mean: window > 0 ? busyNs / window : 0, max };
}

// ---------------------------------------------------------------------------------------------------------------
// Schedule (open loop)

export interface ScheduleDigest {
  pattern: string;
  requestedRatePerS: number;
  /** Measured requests sent / measured window. */
  achievedRatePerS: number;
  /** Gamma shape (1 Poisson); absent for constant arrivals. */
  shape?: number;
  arrivals: number;
  sent: number;
  dropped: number;
  unsent: number;
  /** Sent more than lateMs after their intended start. */
  late: number;
  lateMs: number;
  lagMs: { p50: number; p99: number; max: number };
  maxConcurrency?: number;
  whenFull: "queue" | "drop";
  /** Time the pacer spun waiting (s). */
  pacerSpinS: number;
}

export function scheduleDigest(outcome: OpenLoopOutcome, measured: RequestRecord[], lateMs: number): ScheduleDigest {
  const s = outcome.schedule;
  const lags = measured.map((r) => (r.startNs - r.intendedStartNs) / NS_PER_MS);
  const windowS = outcome.windowNs / 1e9;
  return {
    pattern: s.pattern,
    requestedRatePerS: s.requestedRatePerS,
    achievedRatePerS: windowS > 0 ? s.sent / windowS : 0,
    ...(Number.isFinite(s.shape) ? { shape: s.shape } : {}),
    arrivals: s.arrivals,
    sent: s.sent,
    dropped: s.dropped,
    unsent: s.unsent,
    late: lags.filter((l) => l > lateMs).length,
    lateMs,
    lagMs: {
      p50: lags.length ? percentileOf(lags, 50) : 0,
      p99: lags.length ? percentileOf(lags, 99) : 0,
      max: lags.length ? Math.max(...lags) : 0,
    },
    ...(s.maxConcurrency === undefined ? {} : { maxConcurrency: s.maxConcurrency }),
    whenFull: s.whenFull,
    pacerSpinS: s.pacer.spinNs / 1e9,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Saturation

export interface Trend {
  /** Slope per second. */
  slope: number;
  /** slope / its standard error. */
  t: number;
  /** Fitted rise over the span, relative to the mean. */
  relativeRise: number;
  n: number;
}

/** Least-squares slope of y over x (x in seconds) with its t statistic. */
export function trend(points: ReadonlyArray<readonly [number, number]>): Trend {
  const n = points.length;
  if (n < 3) return { slope: 0, t: 0, relativeRise: 0, n };
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  let minX = Number.POSITIVE_INFINITY;
  let maxX = Number.NEGATIVE_INFINITY;
  for (const [x, y] of points) {
    sxx += (x - mx) ** 2;
    sxy += (x - mx) * (y - my);
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
  }
  if (sxx === 0) return { slope: 0, t: 0, relativeRise: 0, n };
  const slope = sxy / sxx;
  let sse = 0;
  for (const [x, y] of points) sse += (y - (my + slope * (x - mx))) ** 2;
  const se = Math.sqrt(sse / (n - 2) / sxx);
  const t = se > 0 ? slope / se : slope > 0 ? Number.POSITIVE_INFINITY : slope < 0 ? Number.NEGATIVE_INFINITY : 0;
  const relativeRise = my !== 0 ? (slope * (maxX - minX)) / Math.abs(my) : 0;
  return { slope, t, relativeRise, n };
}

export interface SaturationSignal {
  saturated: boolean;
  reason: string;
}

/** A trend counts when it is both statistically clear (t >= 3) and large (the fit rises >= 25% over the step). */
const TREND_T = 3;
const TREND_RISE = 0.25;

/**
 * Within one step (GuideLLM's over-saturation test, simplified): requests outstanding at each arrival and the latency
 * of each request, both trending up over the step, mean the server falls further behind the longer the load lasts.
 * Closed loops hold in-flight constant, so this fires only for open loops (rates); see `stepSaturation` for ramps.
 */
export function withinStepSaturation(measured: RequestRecord[]): SaturationSignal {
  const rs = [...measured].sort((a, b) => a.intendedStartNs - b.intendedStartNs);
  if (rs.length < 10) return { saturated: false, reason: "too few requests to see a trend" };
  const t0 = rs[0]!.intendedStartNs;
  const ends = rs.map((r) => r.endNs).sort((a, b) => a - b);
  const inflightPts: Array<[number, number]> = [];
  const latencyPts: Array<[number, number]> = [];
  let ended = 0;
  rs.forEach((r, i) => {
    const at = r.intendedStartNs;
    while (ended < ends.length && ends[ended]! <= at) ended++;
    const x = (at - t0) / 1e9;
    inflightPts.push([x, i + 1 - ended]);
    const lat = judgedLatencies(r);
    const y = lat.ttftMs ?? lat.e2eMs;
    if (r.ok && y !== undefined) latencyPts.push([x, y]);
  });
  const inflight = trend(inflightPts);
  const latency = trend(latencyPts);
  const up = (tr: Trend) => tr.t >= TREND_T && tr.relativeRise >= TREND_RISE;
  if (up(inflight) && up(latency)) {
    return {
      saturated: true,
      reason: `in-flight requests (+${(100 * inflight.relativeRise).toFixed(0)}%) and latency (+${(100 * latency.relativeRise).toFixed(0)}%) both rose through the step: the server falls further behind`,
    };
  }
  return { saturated: false, reason: "no upward trend in both in-flight requests and latency" };
}

/** Figures of one step that the across-step test compares. */
export interface StepFigures {
  load: number;
  requestsPerS: number;
  e2eP50Ms: number;
  inFlightMean: number;
}

/**
 * Across steps (a concurrency or rate ramp): the next step put more requests in flight and each took longer, but
 * throughput rose by less than 10% of what the load increase would give: more in flight only queues (Little's law).
 */
export function stepSaturation(prev: StepFigures, cur: StepFigures): SaturationSignal {
  const loadRatio = cur.load / prev.load;
  if (!(loadRatio > 1) || !(prev.requestsPerS > 0) || !(prev.e2eP50Ms > 0) || !(prev.inFlightMean > 0)) {
    return { saturated: false, reason: "not comparable with the previous step" };
  }
  const gain = cur.requestsPerS / prev.requestsPerS;
  const latency = cur.e2eP50Ms / prev.e2eP50Ms;
  const inFlight = cur.inFlightMean / prev.inFlightMean;
  const flat = gain - 1 < 0.1 * (loadRatio - 1);
  if (flat && latency > 1.05 && inFlight > 1.05) {
    return {
      saturated: true,
      reason: `load x${loadRatio.toFixed(2)}: in flight x${inFlight.toFixed(2)} and e2e p50 x${latency.toFixed(2)}, but throughput x${gain.toFixed(2)}: saturated`,
    };
  }
  return { saturated: false, reason: `load x${loadRatio.toFixed(2)}: throughput x${gain.toFixed(2)}` };
}

// ---------------------------------------------------------------------------------------------------------------
// Step digests

export type LoadVariable = "concurrency" | "rate";

export interface StepDigest {
  /** Scenario name of the step (`concurrency_4`, `rate_2.5`). */
  label: string;
  variable: LoadVariable;
  load: number;
  trial: number;
  /** max-load: double, bisect, confirm; ramp: ramp. */
  phase: string;
  windowS: number;
  requests: RequestCounts;
  requestsPerS: number;
  outputTokensPerS: number;
  errorRate: number;
  goodputRps?: number;
  e2eMs?: Quantiles;
  ttftMs?: Quantiles;
  tpotMs?: Quantiles;
  /** Open loop: latencies from the intended start. */
  e2eCorrectedMs?: Quantiles;
  ttftCorrectedMs?: Quantiles;
  inFlight: { mean: number; max: number };
  schedule?: ScheduleDigest;
  slo?: SloOutcome;
  saturation?: SaturationSignal;
  stoppedBy: string;
  drain: LoopOutcome["drain"];
  selfCheck: SelfCheckResult;
  /** What was done to the server before the step (ramp, max-load): reset and idle, or why not. Absent in older results. */
  reset?: ProbeResetOutcome;
}

export function stepLabel(variable: LoadVariable, load: number): string {
  return `${variable}_${Number(load.toPrecision(4))}`;
}

/** Reads one driven step into its digest and its scenario (full metrics with histograms). Pure. */
export function digestStep(
  a: { label: string; variable: LoadVariable; load: number; trial: number; phase: string; slo?: Slo; lateMs: number },
  driven: Driven,
): { digest: StepDigest; scenario: ScenarioResult; measured: RequestRecord[] } {
  const { outcome, selfCheck } = driven;
  const measured = outcome.records.filter((r) => r.measured);
  const metrics = computeMetrics([{ records: measured, windowNs: outcome.windowNs }]);
  const open = "schedule" in outcome ? (outcome as OpenLoopOutcome) : undefined;
  const notSent = open ? open.schedule.dropped + open.schedule.unsent : 0;
  const counts = countRequests(measured);
  const windowS = outcome.windowNs / 1e9;
  const errorRate = counts.attempted + notSent > 0 ? (counts.failed + notSent) / (counts.attempted + notSent) : 0;
  const digest: StepDigest = {
    label: a.label,
    variable: a.variable,
    load: a.load,
    trial: a.trial,
    phase: a.phase,
    windowS,
    requests: counts,
    requestsPerS: metrics.requests_per_s?.summary.mean ?? 0,
    outputTokensPerS: metrics.output_tokens_per_s?.summary.mean ?? 0,
    errorRate,
    inFlight: inFlightStats(measured, outcome.measureStartNs, outcome.measureEndNs),
    stoppedBy: outcome.stoppedBy,
    drain: outcome.drain,
    selfCheck,
  };
  const q = (k: keyof typeof metrics, to: "e2eMs" | "ttftMs" | "tpotMs" | "e2eCorrectedMs" | "ttftCorrectedMs") => {
    const v = quantiles(metrics[k]);
    if (v) digest[to] = v;
  };
  q("e2e_ms", "e2eMs");
  q("ttft_ms", "ttftMs");
  q("tpot_ms", "tpotMs");
  q("e2e_corrected_ms", "e2eCorrectedMs");
  q("ttft_corrected_ms", "ttftCorrectedMs");
  if (open) digest.schedule = scheduleDigest(open, measured, a.lateMs);
  if (a.slo) {
    digest.slo = evaluateSlo(measured, a.slo, notSent);
    digest.goodputRps = goodputRps(measured, a.slo, outcome.windowNs);
    metrics.goodput_rps = goodputMetric([digest.goodputRps]);
  }
  if (open) digest.saturation = withinStepSaturation(measured);
  const scenario: ScenarioResult = {
    name: a.label,
    params: { [a.variable]: a.load, trial: a.trial, phase: a.phase },
    metrics,
    requests: counts,
  };
  return { digest, scenario, measured };
}

export function figuresOf(d: StepDigest): StepFigures {
  return {
    load: d.load,
    requestsPerS: d.requestsPerS,
    e2eP50Ms: d.e2eCorrectedMs?.p50 ?? d.e2eMs?.p50 ?? Number.NaN,
    inFlightMean: d.inFlight.mean,
  };
}

/** One scenario per task (stress, open-loop mixes), rates over the test's own measured windows. Pure. */
export function scenariosByTask(
  tasks: LoadTask[],
  measured: RequestRecord[],
  windowsNs: number[],
  slo?: Slo,
): ScenarioResult[] {
  const totalWeight = tasks.reduce((s, t) => s + t.weight, 0);
  return tasks.map((t) => {
    const recs = measured.filter((r) => r.scenario === t.name);
    const perTrial = windowsNs.map((w, trial) => ({ records: recs.filter((r) => r.trial === trial), windowNs: w }));
    const trialsWith = perTrial.filter((p) => p.records.length > 0);
    const metrics = computeMetrics(trialsWith);
    if (slo && trialsWith.length)
      metrics.goodput_rps = goodputMetric(trialsWith.map((p) => goodputRps(p.records, slo, p.windowNs)));
    return {
      name: t.name,
      params: {
        weight: t.weight,
        expectedShare: t.weight / totalWeight,
        observedShare: measured.length ? recs.length / measured.length : 0,
        api: t.api,
        maxTokens: t.maxTokens,
        ...(t.prompt === undefined ? { promptTokens: t.promptTokens } : { prompt: t.prompt }),
      },
      metrics,
      requests: countRequests(recs),
    };
  });
}
