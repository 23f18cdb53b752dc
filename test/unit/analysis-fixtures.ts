/**
 * Synthetic results with known noise for the analysis tests (pure data; no server). A run has K trials; each trial has
 * a trial factor (shared by all metrics of the trial, as a slow runner slows everything) and a small per-metric
 * jitter, both log-normal. With `runEffect`, the whole run (one server process) also gets one factor shared by all its
 * trials, plus a per-metric part of a third of it: the between-run component that trials of one run cannot show.
 * A slowdown multiplies latencies and divides rates.
 */

import { seededNormal, seededRandom } from "../../src/analysis/stats.js";
import { encodeHistogram, histogramOf } from "../../src/measure/histogram.js";
import type {
  EnvironmentFingerprint,
  MetricResult,
  MetricSummary,
  Results,
  TestResult,
} from "../../src/measure/results.js";

export const BASE_VALUES: Record<
  string,
  { value: number; unit: string; better: "lower" | "higher"; perRequest: boolean }
> = {
  ttft_ms: { value: 120, unit: "ms", better: "lower", perRequest: true },
  e2e_ms: { value: 900, unit: "ms", better: "lower", perRequest: true },
  tpot_ms: { value: 25, unit: "ms", better: "lower", perRequest: true },
  decode_tokens_per_s: { value: 40, unit: "tok/s", better: "higher", perRequest: true },
  output_tokens_per_s: { value: 300, unit: "tok/s", better: "higher", perRequest: false },
  requests_per_s: { value: 4, unit: "req/s", better: "higher", perRequest: false },
};

export function environment(over: Partial<EnvironmentFingerprint> = {}): EnvironmentFingerprint {
  return {
    os: "linux",
    arch: "x64",
    cpuModel: "AMD EPYC 9654",
    cpuCount: 16,
    memoryBytes: 128e9,
    node: "v24.22.3",
    gpus: [{ name: "NVIDIA H200", driver: "580.65", memoryMiB: 143771 }],
    cuda: "13.0",
    target: {
      kind: "llama-server",
      build: "b1-80fb11a",
      serverFlags: [
        "--host",
        "127.0.0.1",
        "--port",
        "41234",
        "--threads",
        "8",
        "--parallel",
        "4",
        "-m",
        "/tmp/x/model.gguf",
      ],
      model: { path: "/tmp/x/model.gguf", sha256: "a".repeat(64), quantization: "q4_0" },
      details: { threads: 8, slots: 4 },
    },
    ...over,
  };
}

function pointSummary(v: number): MetricSummary {
  return { count: 1, mean: v, stddev: 0, min: v, p50: v, p90: v, p95: v, p99: v, max: v };
}

/** A per-request trial summary around a median `v` (tail ratios fixed, so p95 moves with p50). */
function requestSummary(v: number): MetricSummary {
  return {
    count: 50,
    mean: v * 1.05,
    stddev: v * 0.2,
    min: v * 0.6,
    p50: v,
    p90: v * 1.25,
    p95: v * 1.35,
    p99: v * 1.6,
    max: v * 2,
  };
}

export interface SyntheticOptions {
  seed: number;
  trials: number;
  /** Trial-to-trial noise (log-normal sigma of the trial factor), e.g. 0.03. */
  noise: number;
  /** Between-run noise: log-normal sigma of a factor shared by every trial of this run, e.g. 0.10. Default 0. */
  runEffect?: number;
  /** Per-metric jitter within a trial; default noise / 3. */
  jitter?: number;
  /** Slowdown: latencies x (1 + slowdown), rates / (1 + slowdown). */
  slowdown?: number;
  /** Only these metrics slow down (default all). */
  slowMetrics?: string[];
  tests?: string[];
  /** Attach per-request HDR histograms (200 requests per trial). */
  histograms?: boolean;
  env?: Partial<EnvironmentFingerprint>;
  suite?: { name: string; sha256: string };
}

export function syntheticRun(o: SyntheticOptions): Results {
  const random = seededRandom(`fixture:${o.seed}`);
  const normal = seededNormal(random);
  const jitter = o.jitter ?? o.noise / 3;
  // Drawn only when asked for, so runs without a run effect keep the values they always had for their seed.
  const runFactor = o.runEffect ? Math.exp(o.runEffect * normal()) : 1;
  const tests: TestResult[] = (o.tests ?? ["latency"]).map((name) => {
    const factors = Array.from({ length: o.trials }, () => Math.exp(o.noise * normal()));
    const metrics: Record<string, MetricResult> = {};
    for (const [key, def] of Object.entries(BASE_VALUES)) {
      const slow = o.slowdown && (!o.slowMetrics || o.slowMetrics.includes(key)) ? 1 + o.slowdown : 1;
      const run = o.runEffect ? runFactor * Math.exp((o.runEffect / 3) * normal()) : 1;
      const scale = def.better === "lower" ? slow * run : 1 / (slow * run);
      const perTrial = factors.map((f) => {
        const slowF = def.better === "lower" ? f : 1 / f;
        return def.value * scale * slowF * Math.exp(jitter * normal());
      });
      const trials = perTrial.map((v) => (def.perRequest ? requestSummary(v) : pointSummary(v)));
      const m: MetricResult = {
        unit: def.unit,
        better: def.better,
        summary: def.perRequest ? requestSummary(median(perTrial)) : pointSummary(median(perTrial)),
        trials,
      };
      if (o.histograms && def.perRequest) {
        const values = perTrial.flatMap((v) => Array.from({ length: 200 }, () => v * Math.exp(0.2 * normal())));
        m.histogram = encodeHistogram(histogramOf(values));
      }
      metrics[key] = m;
    }
    metrics.error_rate = {
      unit: "ratio",
      better: "lower",
      summary: pointSummary(0),
      trials: factors.map(() => pointSummary(0)),
    };
    return {
      name,
      kind: "latency",
      params: { concurrency: 1, promptTokens: 128 },
      metrics,
      scenarios: [],
      requests: { attempted: 50 * o.trials, succeeded: 50 * o.trials, failed: 0, errors: {}, shortfalls: 0 },
      windowS: 30,
      trials: o.trials,
    };
  });
  return {
    schemaVersion: 1,
    tool: { name: "tokengate", version: "0.1.0" },
    startedAt: "2026-11-29T00:00:00.000Z",
    finishedAt: "2026-11-29T00:10:00.000Z",
    suite: o.suite ?? { name: "smoke", sha256: "s".repeat(64) },
    environment: environment(o.env),
    tests,
    verdict: { overall: "pass", checks: [], reason: "" },
  };
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
