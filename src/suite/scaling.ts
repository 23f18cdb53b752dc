import { closeSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { StreamClient } from "../client/stream-client.js";
import type { ScalingTest } from "../config/suite-schema.js";
import { detectGpuInventory, type GpuInventory, visibleTopology } from "../measure/gpu-topology.js";
import { computeMetrics, countRequests, windowNs } from "../measure/metrics.js";
import type { RequestRecord } from "../measure/record.js";
import type { Metrics, ScenarioResult, TestResult } from "../measure/results.js";
import { startServerSampler } from "../measure/server-metrics.js";
import { createLlamaServerTarget, type LlamaServerTargetOptions } from "../target/llama-server.js";
import type { Endpoint } from "../target/types.js";
import { BadInputError } from "../util/errors.js";
import { makePrompt } from "../workload/prompts.js";
import { apiFor, runPool, sendAndRecord, type TestContext } from "./context.js";
import { aggregateOf } from "./load-common.js";
import {
  checkScalingFlags,
  headlinePoint,
  type PhaseFigures,
  type PlannedPoint,
  phaseFigures,
  planScaling,
  type ScalingExtra,
  type ScalingPoint,
  scalingFigures,
} from "./scaling-plan.js";

/**
 * The multi-GPU scaling experiment: the same workload (a throughput phase at a fixed concurrency, then a latency
 * phase of single requests) on a llama-server restarted for every configuration of src/suite/scaling-plan.ts (GPU
 * subset via CUDA_VISIBLE_DEVICES x split mode x tensor split). Configurations run one after another, each on its own
 * server, which is stopped before the next starts: two servers never share the GPUs while one is measured.
 *
 * A configuration that cannot start (a split mode the build lacks, too little memory) or whose server dies is
 * recorded as failed with the reason, and the experiment goes on; only bad input stops it.
 */

/** A llama-server configuration to start: extra environment and flags over the run's own. */
export interface ServerVariant {
  /** File-name safe; names the server's log (`llama-server-<label>.log`). */
  label: string;
  env: Record<string, string>;
  extraFlags: string[];
}

/** A server started for one configuration. The caller stops it. */
export interface RestartedServer extends AsyncDisposable {
  endpoint: Endpoint;
  alive(): boolean;
  stop(): Promise<void>;
}

/**
 * The capability to start llama-servers like the run's own with other environment and flags. The pipeline gives it
 * to tests of a llama-server target (TestContext); tests of other targets get none.
 */
export interface RestartTarget {
  /** The suite's server flags, which every started server gets before the variant's. */
  readonly serverFlags: readonly string[];
  start(variant: ServerVariant, signal: AbortSignal): Promise<RestartedServer>;
}

/**
 * A RestartTarget over createLlamaServerTarget: the same options as the run's target (model, binary, threads, flags,
 * ready timeout), the variant's environment and flags added, and the log in `<outDir>/llama-server-<label>.log`.
 */
export function llamaServerRestarter(base: LlamaServerTargetOptions): RestartTarget {
  const serverFlags = [...(base.serverFlags ?? [])];
  return {
    serverFlags,
    async start(variant, signal) {
      const { logFile: _log, port: _port, ...rest } = base;
      const target = createLlamaServerTarget({
        ...rest,
        serverFlags: [...serverFlags, ...variant.extraFlags],
        env: { ...(base.env ?? {}), ...variant.env },
        ...(base.outDir ? { logFile: join(base.outDir, `llama-server-${variant.label}.log`) } : {}),
      });
      try {
        const endpoint = await target.start(signal);
        return {
          endpoint,
          alive: () => target.alive(),
          stop: () => target.stop(),
          [Symbol.asyncDispose]: () => target.stop(),
        };
      } catch (err) {
        await target.stop();
        throw err;
      }
    },
  };
}

/** What the scaling test needs beyond a TestContext (the pipeline adds it for llama-server targets). */
export interface ScalingContext extends TestContext {
  restartTarget?: RestartTarget;
  /** GPUs and topology; default: nvidia-smi, narrowed by CUDA_VISIBLE_DEVICES. */
  gpuInventory?: () => Promise<GpuInventory>;
}

/** How often a configuration's server is checked for life while it is measured. */
const WATCHDOG_MS = 250;

export async function runScalingTest(ctx: ScalingContext, test: ScalingTest, trials: number): Promise<TestResult> {
  const restart = ctx.restartTarget;
  if (!restart) {
    throw new BadInputError("the scaling experiment restarts llama-server per configuration and needs that target", {
      subject: `tests: ${ctx.testName}`,
      hint: "set target.kind: llama-server (or --target llama-server) with a model, e.g. examples/suites/scaling.yml",
    });
  }
  checkScalingFlags(restart.serverFlags);
  // Said before any server starts: the API is the same for every configuration.
  const api = apiFor(ctx, test.api);
  const inventory = await (ctx.gpuInventory ?? (() => detectGpuInventory()))();
  const plan = planScaling(test, inventory);

  const perPoint = trials * (test.throughput.warmup + test.throughput.requests);
  const perPointLatency = test.latency.repetitions > 0 ? trials * (test.latency.warmup + test.latency.repetitions) : 0;
  const total = plan.points.length * (perPoint + perPointLatency);
  let done = 0;
  const progress = () => ctx.onRequestDone?.(++done, total);

  const measured: Array<{ point: PlannedPoint; records: RequestRecord[] }> = [];
  const scenarios: ScenarioResult[] = [];
  const points: ScalingPoint[] = [];
  for (const point of plan.points) {
    if (ctx.signal.aborted) {
      points.push({ ...point, status: "aborted", error: String(ctx.signal.reason ?? "aborted") });
      continue;
    }
    const outcome = await runPoint(ctx, test, trials, point, restart, api, progress);
    points.push(outcome.point);
    scenarios.push(...outcome.scenarios);
    measured.push({ point, records: outcome.records });
  }

  const { points: figured, reference } = scalingFigures(points);
  // The GPUs the run could use, as the environment fingerprint records them (not every GPU of the host).
  const visible = visibleTopology(inventory);
  const head = headlinePoint(figured);
  const allMeasured = measured.flatMap((m) => m.records);
  const extra: ScalingExtra = {
    points: figured,
    ...(reference ? { reference } : {}),
    ...(head ? { headline: head.id } : {}),
    visibleGpus: plan.visibleGpus,
    gpuNames: plan.gpuNames,
    ...(visible ? { topology: visible.summary } : {}),
    ...(inventory.cudaVisibleDevices !== undefined ? { cudaVisibleDevices: inventory.cudaVisibleDevices } : {}),
    skipped: plan.skipped,
    notes: plan.notes,
  };
  return {
    name: ctx.testName,
    kind: "scaling",
    params: {
      gpus: test.gpus,
      splitModes: test.splitModes,
      tensorSplits: test.tensorSplits,
      throughput: test.throughput,
      latency: test.latency,
      api,
      maxTokens: test.maxTokens ?? ctx.request.maxTokens,
      configurations: plan.points.map((p) => p.id),
    },
    metrics: headlineMetrics(
      scenarios,
      head,
      figured.find((p) => p.id === reference),
      allMeasured,
      trials,
    ),
    scenarios,
    requests: countRequests(allMeasured),
    windowS: measured.reduce((s, m) => s + phaseWindowsS(m.records), 0),
    trials,
    extra: extra as unknown as Record<string, unknown>,
    ...(ctx.signal.aborted ? { aborted: String(ctx.signal.reason ?? "aborted") } : {}),
  };
}

/**
 * The test's own metrics, for targets and baselines: the headline point's (most GPUs, first configuration) latency
 * phase per-request metrics and throughput phase rates, the error rate over every configuration, and, when it has
 * more GPUs than the reference, its `speedup` and `scaling_efficiency` (per trial, against the reference's mean).
 */
function headlineMetrics(
  scenarios: ScenarioResult[],
  head: ScalingPoint | undefined,
  ref: ScalingPoint | undefined,
  allMeasured: RequestRecord[],
  trials: number,
): Metrics {
  const metrics: Metrics = {};
  if (head) {
    const tput = scenarios.find((s) => s.name === `${head.id}:throughput`)?.metrics ?? {};
    const lat = scenarios.find((s) => s.name === `${head.id}:latency`)?.metrics ?? {};
    // Per-request metrics from the latency phase (one in flight: the configuration's own latency), falling back to
    // the throughput phase when there is no latency phase; rates from the throughput phase.
    for (const [k, m] of Object.entries(Object.keys(lat).length ? lat : tput)) if (m.histogram) metrics[k] = m;
    for (const k of ["output_tokens_per_s", "requests_per_s"]) if (tput[k]) metrics[k] = tput[k];
    const refTput = ref?.throughput?.outputTokensPerS;
    const perTrial = tput.output_tokens_per_s?.trials.map((t) => t.mean) ?? [];
    if (ref && refTput && head.gpus > ref.gpus && perTrial.length) {
      const speedups = perTrial.map((v) => v / refTput);
      metrics.speedup = aggregateOf("x", "higher", speedups);
      metrics.scaling_efficiency = aggregateOf(
        "ratio",
        "higher",
        speedups.map((s) => s / (head.gpus / ref.gpus)),
      );
    }
  }
  const errors = computeMetrics(
    Array.from({ length: trials }, (_, t) => ({ records: allMeasured.filter((r) => r.trial === t) })).filter(
      (t) => t.records.length > 0,
    ),
  ).error_rate;
  if (errors) metrics.error_rate = errors;
  return metrics;
}

/** Measured time of a configuration: the window of each phase of each trial, summed (s). */
function phaseWindowsS(records: RequestRecord[]): number {
  const groups = new Map<string, RequestRecord[]>();
  for (const r of records) {
    const key = `${r.scenario}#${r.trial}`;
    const list = groups.get(key);
    if (list) list.push(r);
    else groups.set(key, [r]);
  }
  let s = 0;
  for (const recs of groups.values()) s += windowNs(recs) / 1e9;
  return s;
}

interface PointOutcome {
  point: ScalingPoint;
  scenarios: ScenarioResult[];
  /** Measured records of the point. */
  records: RequestRecord[];
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split("\n")[0] ?? msg).slice(0, 300);
}

/** llama.cpp log lines start with a timestamp and a level: `0.00.103.419 E llama_prepare_model_devices: ...`. */
const LOG_PREFIX = /^\s*\|?\s*(?:\d+\.\d+\.\d+\.\d+\s+)?(?:[EWI]\s+)?/;

/**
 * Why a configuration's server did not start, in one line: the start error without its log path, and the log's first
 * error line (the cause; the last one is usually llama-server's "exiting due to model loading error").
 */
export function startFailure(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const lines = msg.split("\n");
  const head = (lines[0] ?? "").replace(/;\s*(last lines of .*|\(the log .*)$/, "");
  const tail = lines.filter((l) => l.startsWith("  | ")).map((l) => l.slice(4));
  const cause =
    tail.find((l) => /^\s*\d+\.\d+\.\d+\.\d+\s+E\s/.test(l)) ??
    tail.find((l) => /\berror\b|failed|out of memory/i.test(l)) ??
    tail[tail.length - 1];
  const text = cause ? `${head}: ${cause.replace(LOG_PREFIX, "").trim()}` : head;
  return text.slice(0, 300);
}

const CUDA_DEVICES = /ggml_cuda_init: found (\d+) CUDA devices/;
/** llama.cpp's model loader names each device it uses (src/llama.cpp: "using device CUDA0 (...)"). */
const CUDA_DEVICE_USED = /using device CUDA(\d+)\b/g;

/**
 * CUDA devices the server reported at start (its log's first 64 KiB), if it is a CUDA build. On the H200 the
 * `ggml_cuda_init` line did not reach llama-server's log (it is printed before the server's logging is set up), so
 * the loader's "using device CUDAn" lines count too.
 */
export function serverGpusFromLog(text: string): number | undefined {
  const m = CUDA_DEVICES.exec(text);
  if (m) return Number(m[1]);
  const used = new Set([...text.matchAll(CUDA_DEVICE_USED)].map((u) => u[1]));
  return used.size > 0 ? used.size : undefined;
}

function logHead(file: string | undefined): string {
  if (!file) return "";
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function runPoint(
  ctx: ScalingContext,
  test: ScalingTest,
  trials: number,
  point: PlannedPoint,
  restart: RestartTarget,
  api: ReturnType<typeof apiFor>,
  progress: () => void,
): Promise<PointOutcome> {
  const variant: ServerVariant = {
    label: `${ctx.testName}-${point.id}`,
    env: point.cudaVisibleDevices === undefined ? {} : { CUDA_VISIBLE_DEVICES: point.cudaVisibleDevices },
    extraFlags: point.flags,
  };
  const t0 = performance.now();
  let server: RestartedServer;
  try {
    server = await restart.start(variant, ctx.signal);
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    const status = ctx.signal.aborted ? "aborted" : "failed";
    return { point: { ...point, status, error: startFailure(err) }, scenarios: [], records: [] };
  }
  const loadS = (performance.now() - t0) / 1000;
  const serverGpus = serverGpusFromLog(logHead(server.endpoint.logFile));
  const died = new AbortController();
  const watchdog = setInterval(() => {
    if (!server.alive()) died.abort(new Error(`the llama-server of ${point.id} exited during the run`));
  }, WATCHDOG_MS);
  const client = new StreamClient(server.endpoint, {
    stallTimeoutMs: ctx.request.stallTimeoutMs,
    requestTimeoutMs: ctx.request.requestTimeoutMs,
  });
  const sub: TestContext = {
    ...ctx,
    endpoint: server.endpoint,
    client,
    signal: AbortSignal.any([ctx.signal, died.signal]),
  };
  const records: RequestRecord[] = [];
  let observed: ScalingPoint["server"] | undefined;
  try {
    const tput = test.throughput;
    const send = (scenario: string, trial: number, measured: boolean, promptTokens: number) => async () => {
      const rec = await sendAndRecord(sub, {
        scenario,
        trial,
        measured,
        prompt: makePrompt(promptTokens, ctx.rng),
        api,
        ...(test.maxTokens ? { maxTokens: test.maxTokens } : {}),
      });
      if (measured) records.push(rec);
      progress();
    };
    const sampler = await startServerSampler(server.endpoint);
    try {
      for (let trial = 0; trial < trials && !sub.signal.aborted; trial++) {
        const scenario = `${point.id}:throughput`;
        if (tput.warmup > 0) {
          await runPool(tput.warmup, tput.concurrency, send(scenario, trial, false, tput.promptTokens), sub.signal);
        }
        await runPool(tput.requests, tput.concurrency, send(scenario, trial, true, tput.promptTokens), sub.signal);
      }
    } finally {
      const obs = await sampler.stop();
      if (obs) {
        observed = {
          ...(obs.rates.decodeTokensPerS === undefined ? {} : { decodeTokensPerS: obs.rates.decodeTokensPerS }),
          ...(obs.rates.tokensPerDecodeCall === undefined
            ? {}
            : { tokensPerDecodeCall: obs.rates.tokensPerDecodeCall }),
          ...(obs.rates.promptTokensPerS === undefined ? {} : { promptTokensPerS: obs.rates.promptTokensPerS }),
        };
      }
    }
    const lat = test.latency;
    if (lat.repetitions > 0) {
      for (let trial = 0; trial < trials && !sub.signal.aborted; trial++) {
        for (let i = 0; i < lat.warmup + lat.repetitions && !sub.signal.aborted; i++) {
          await send(`${point.id}:latency`, trial, i >= lat.warmup, lat.promptTokens)();
        }
      }
    }
  } finally {
    clearInterval(watchdog);
    await client.close();
    await server.stop();
  }

  const phases = [
    { phase: "throughput", name: `${point.id}:throughput` },
    { phase: "latency", name: `${point.id}:latency` },
  ];
  const scenarios: ScenarioResult[] = [];
  const figures: Partial<Record<"throughput" | "latency", PhaseFigures>> = {};
  for (const { phase, name } of phases) {
    const recs = records.filter((r) => r.scenario === name);
    if (recs.length === 0) continue;
    const metrics = computeMetrics(
      Array.from({ length: trials }, (_, t) => ({ records: recs.filter((r) => r.trial === t) })).filter(
        (t) => t.records.length > 0,
      ),
    );
    const requests = countRequests(recs);
    scenarios.push({
      name,
      params: {
        point: point.id,
        phase,
        gpus: point.gpus,
        devices: point.devices,
        ...(point.splitMode ? { splitMode: point.splitMode } : {}),
        ...(point.tensorSplit ? { tensorSplit: point.tensorSplit } : {}),
      },
      metrics,
      requests,
    });
    figures[phase as "throughput" | "latency"] = phaseFigures(metrics, requests);
  }
  const succeeded = records.filter((r) => r.ok).length;
  const stopped = died.signal.aborted ? died.signal.reason : ctx.signal.aborted ? ctx.signal.reason : undefined;
  const status: ScalingPoint["status"] =
    ctx.signal.aborted && !died.signal.aborted ? "aborted" : died.signal.aborted || succeeded === 0 ? "failed" : "ok";
  const error =
    stopped !== undefined
      ? firstLine(stopped)
      : succeeded === 0
        ? `no request succeeded (${records.length} measured)`
        : undefined;
  return {
    point: {
      ...point,
      status,
      ...(error ? { error } : {}),
      loadS,
      ...(serverGpus === undefined ? {} : { serverGpus }),
      ...figures,
      ...(observed && Object.keys(observed).length ? { server: observed } : {}),
    },
    scenarios,
    records,
  };
}
