/**
 * The results data contract (results.json). Versioned: bump RESULTS_SCHEMA_VERSION on any breaking change and keep
 * `schema/results.schema.json` (generated from src/report/results-schema.ts) in step.
 */
import type { TargetFingerprint } from "../target/types.js";
import type { MachineLoad } from "./machine-load.js";
import type { ErrorClass } from "./record.js";

export const RESULTS_SCHEMA_VERSION = 1;

export type Better = "lower" | "higher";

export interface MetricSummary {
  count: number;
  mean: number;
  stddev: number;
  min: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

/** Names the same quantity has in peer tools, so users can line results up. */
export interface MetricAliases {
  vllm?: string;
  guidellm?: string;
  aiperf?: string;
}

export interface MetricResult {
  unit: string;
  better: Better;
  /** Over all measured requests of all trials (per-request metrics) or over trials (aggregate metrics). */
  summary: MetricSummary;
  /** HDR histogram of per-request values, encoded by src/measure/histogram.ts (absent for aggregate metrics). */
  histogram?: string;
  /** The metric's summary per trial (K repeated trials); a single entry when the test ran once. */
  trials: MetricSummary[];
  aliases?: MetricAliases;
}

export type Metrics = Record<string, MetricResult>;

export interface RequestCounts {
  attempted: number;
  succeeded: number;
  failed: number;
  /** Failures by class. */
  errors: Partial<Record<ErrorClass, number>>;
  /** Requests that produced fewer output tokens than asked (they count as succeeded). */
  shortfalls: number;
}

export interface CrossCheck {
  /** Median of client TTFT minus server prompt_ms (ms): queueing + network + HTTP overhead. */
  ttftMinusServerPromptMsP50?: number;
  /** Median of client decode rate / server predicted_per_second. ~1 when the client sees what the server does. */
  decodeRateRatioP50?: number;
  samples: number;
}

export interface ScenarioResult {
  name: string;
  params: Record<string, unknown>;
  metrics: Metrics;
  requests: RequestCounts;
}

export interface TestResult {
  name: string;
  kind: string;
  params: Record<string, unknown>;
  /** Headline metrics for the whole test. */
  metrics: Metrics;
  /** Per prompt length, per task, per load step... */
  scenarios: ScenarioResult[];
  requests: RequestCounts;
  crossCheck?: CrossCheck;
  /** Measured window (s), for aggregate rates. */
  windowS: number;
  trials: number;
  /** Extra structured output of a test kind (ramp steps, max-load search, self-check). */
  extra?: Record<string, unknown>;
  /** Set when the test could not finish (server died, stalled); what was measured is kept. */
  aborted?: string;
  /** What the server itself said during the test (llama-server `/metrics` and `/slots`); absent without `/metrics`. */
  server?: ServerObservation;
  /** How busy the machine was with other work during the test (measure/machine-load.ts); absent without /proc. */
  machine?: MachineLoad;
}

/**
 * llama-server `/metrics` counter deltas between a scrape just before and just after a test (warm-up included).
 * Counters, not the `*_tokens_seconds` gauges: those reset on every scrape (shared/FACTS.md).
 */
export interface ServerCounters {
  /** `prompt_tokens_total`: prompt tokens the server computed (cached tokens excluded). */
  promptTokens: number;
  /** `prompt_seconds_total`: wall time spent in prompt batches (s). */
  promptSeconds: number;
  /** `prompt_tokens_cached_total`: prompt tokens reused from the prompt cache. */
  cachedPromptTokens: number;
  /** `tokens_predicted_total`: generated tokens of requests that finished in the window. */
  tokensPredicted: number;
  /** `tokens_predicted_seconds_total`: generation time summed over requests (s); exceeds wall time when slots run in parallel. */
  predictedSeconds: number;
  /** `n_decode_total`: llama_decode() calls (prompt and generation batches; speculative excluded). */
  decodeCalls: number;
  /** `spec_decode_num_draft_tokens_total`, `..._accepted_tokens_total`, `..._drafts_total` (speculative decoding). */
  draftTokens?: number;
  draftAccepted?: number;
  drafts?: number;
}

/** Rates derived from the counter deltas. Each is absent when its denominator is 0. */
export interface ServerRates {
  /** promptTokens / promptSeconds: prompt processing throughput (tok/s). */
  promptTokensPerS?: number;
  /** tokensPredicted / predictedSeconds: generation speed of one request (tok/s per slot). */
  decodeTokensPerSPerSlot?: number;
  /** tokensPredicted / window: generated tokens per second of wall time (tok/s). */
  decodeTokensPerS?: number;
  /** (promptTokens + tokensPredicted) / decodeCalls: tokens per llama_decode() call. */
  tokensPerDecodeCall?: number;
  /** Busy slots per llama_decode() call over the window (batch fill), from the cumulative gauge and n_decode deltas. */
  busySlotsPerDecode?: number;
  /** promptSeconds / window: share of wall time spent processing prompts (0..1). */
  promptTimeShare?: number;
  /** draftAccepted / draftTokens (speculative decoding). */
  draftAcceptance?: number;
  /** cachedPromptTokens / (promptTokens + cachedPromptTokens). */
  promptCacheHitRatio?: number;
}

/** One sample of the server's load during a test (every ~250 ms; thinned to a bounded number for long tests). */
export interface ServerLoadSample {
  /** ms since the sampler started. */
  tMs: number;
  /** `/slots`: slots with `is_processing`. */
  busySlots?: number;
  /** `requests_processing` gauge. */
  processing?: number;
  /** `requests_deferred` gauge: requests waiting for a free slot. */
  deferred?: number;
}

/** Slot occupancy and queueing over a test, from all samples (exact even when the timeline was thinned). */
export interface ServerLoad {
  samples: number;
  /** Nominal sampling interval (ms). */
  intervalMs: number;
  /** Slots the server has (`/slots` length). */
  slots?: number;
  busySlotsMean?: number;
  busySlotsMax?: number;
  /** busySlotsMean / slots (0..1). */
  occupancy?: number;
  /** Share of samples with every slot busy (0..1). */
  allBusyShare?: number;
  processingMean?: number;
  deferredMean?: number;
  deferredMax?: number;
  /** Share of samples with at least one deferred request (0..1). */
  deferredShare?: number;
  timeline: ServerLoadSample[];
}

export interface ServerObservation {
  /** What was read: `llama-server` counters (`llamacpp:*`). */
  source: "llama-server";
  /** Time between the before and after scrapes (s). */
  windowS: number;
  counters: ServerCounters;
  rates: ServerRates;
  load?: ServerLoad;
  /** Samples that failed (timeouts under load, a closed connection); the rest are still used. */
  scrapeErrors: number;
}

/** Where a request's time went (medians, ms). Queueing = client TTFT minus the server's own prompt time. */
export interface TimeSplit {
  test: string;
  e2eMs: number;
  /** Waiting for a slot + HTTP + the first token's decode; absent without server `timings`. */
  queueMs?: number;
  /** Server prompt processing (TTFT minus queueing); the whole TTFT without server `timings`. */
  promptMs: number;
  decodeMs: number;
}

export type BottleneckKind =
  | "client"
  | "queueing"
  | "prefill"
  | "decode"
  | "underloaded"
  | "errors"
  | "shortfall"
  | "speculative"
  | "aborted"
  | "busy-machine"
  | "drift";

/** One finding of src/analysis/bottleneck.ts: what limits the server in a test, with the numbers that show it. */
export interface Bottleneck {
  test: string;
  kind: BottleneckKind;
  /** high: this limits the run (or makes it untrustworthy); medium: a real cost; low: worth knowing. */
  severity: "high" | "medium" | "low";
  /** One line: `requests wait for a free slot`. */
  title: string;
  /** Lines with numbers: `client TTFT p50 84 ms vs server prompt time 12 ms: 72 ms (86%) waiting`. */
  evidence: string[];
}

export type RecommendationKnob =
  | "parallel"
  | "batch-size"
  | "kv-cache-type"
  | "flash-attention"
  | "quantization"
  | "prompt-cache"
  | "speculative"
  | "threads"
  | "gpu-offload"
  | "context-size"
  | "load"
  | "client"
  | "errors"
  | "machine";

/** What to try next (src/analysis/recommendations.ts), tied to the bottlenecks it addresses. */
export interface Recommendation {
  knob: RecommendationKnob;
  /** `try --parallel 8 (now 4)`. */
  action: string;
  /** Server flags to try, when the knob is a flag: `["--parallel", "8"]`. */
  flags?: string[];
  /** Why, in one line. */
  why: string;
  evidence: string[];
  tests: string[];
}

/** Bottleneck analysis and recommendations for a run (absent in results written before the analysis existed). */
export interface RunAnalysis {
  timeSplits: TimeSplit[];
  bottlenecks: Bottleneck[];
  recommendations: Recommendation[];
}

export interface EnvironmentFingerprint {
  os: string;
  arch: string;
  cpuModel: string;
  cpuCount: number;
  memoryBytes: number;
  node: string;
  gpus: Array<{ name: string; driver?: string; memoryMiB?: number }>;
  /**
   * GPUs this run may use: `nvidia-smi -L` narrowed by the CUDA_VISIBLE_DEVICES tokengate runs with (0 without
   * nvidia-smi). Absent in results written before it was recorded.
   */
  gpuCount?: number;
  /** How the GPUs are linked (`nvidia-smi topo -m`); absent with fewer than 2 GPUs or where nvidia-smi cannot say. */
  gpuTopology?: GpuTopology;
  cuda?: string;
  target: TargetFingerprint;
}

/**
 * `nvidia-smi topo -m`, GPU part: the link between each pair of GPUs (`X` self, `NV18` 18 bonded NVLinks, `PIX`,
 * `PXB`, `PHB`, `NODE`, `SYS`: PCIe paths from closest to farthest). Indices are nvidia-smi's (`GPU0` is index 0).
 */
export interface GpuTopology {
  /** Column names as printed: `GPU0`, `GPU1`, ... */
  gpus: string[];
  /** links[i][j]: the link between gpus[i] and gpus[j]. */
  links: string[][];
  /** Per GPU, when printed: the `CPU Affinity` column (`0-55,112-167`). */
  cpuAffinity?: string[];
  /** Per GPU, when printed: the `NUMA Affinity` column. */
  numaAffinity?: string[];
  /** One line: `8 GPUs; GPU pairs: NV18 x28`. */
  summary: string;
}

export type VerdictLevel = "pass" | "warn" | "fail";

/**
 * The statistics behind a baseline check (src/analysis/compare.ts), for reports' regression tables. Changes are
 * fractions of the baseline median of per-trial values: +0.14 = 14% higher, whichever direction is better.
 */
export interface CheckComparison {
  /** median(candidate trials) / median(baseline trials) - 1. */
  change: number;
  /** Bootstrap interval of the same change (absent with fewer than 2 trials on a side). */
  ciLow?: number;
  ciHigh?: number;
  /** e.g. 0.95. */
  ciLevel?: number;
  /** One-sided rank-test p-value that the candidate is worse (per-trial values), before and after Holm. */
  pValue?: number;
  pAdjusted?: number;
  /** One-sided rank test on per-request samples (supporting evidence; ignores run-to-run noise). */
  requestPValue?: number;
  trials: { baseline: number; candidate: number };
  /** Too little evidence to call it either way (the check warns). */
  inconclusive?: boolean;
  /** Trials per side to add for a decisive answer, when estimable. */
  moreTrials?: number;
  /** Set after a confirmation rerun of a failing check. */
  confirmation?: "confirmed" | "not-confirmed";
  /**
   * The smallest change in the worse direction (a fraction: 0.041 = 4.1%) that this comparison's own variance would
   * have detected at the policy's power and alpha: what a pass is worth (compare.ts detectableChange).
   */
  detectable?: number;
  /** Same-runner A/B: how many interleaved pairs of runs the paired test compared. */
  pairs?: number;
}

export interface Check {
  test: string;
  /** `ttft_ms.p95`, `requests_per_s.mean`, ... */
  metric: string;
  source: "target" | "baseline" | "run";
  verdict: VerdictLevel;
  value?: number;
  /** Target threshold or baseline value. */
  reference?: number;
  /** One line a reviewer reads: `ttft p95 +14% [95% CI +9%..+19%] above fail 10%`. */
  reason: string;
  /** Baseline checks only: the numbers behind the reason. */
  comparison?: CheckComparison;
}

/** One difference of the configuration under test between the baseline (arm A) and this run (arm B). */
export interface ConfigurationChange {
  /** Field path: `target.build`, `target.serverFlags.--parallel`, `suite.sha256`. */
  field: string;
  /** What a reviewer calls it: `llama.cpp build`, `--parallel`, `model`. */
  label: string;
  baseline: string;
  run: string;
}

export interface Verdict {
  overall: VerdictLevel;
  checks: Check[];
  /** Why the overall verdict is what it is, in one line. */
  reason: string;
  /**
   * What the configuration under test changed against the baseline or the other arm (analysis/fingerprint.ts), the
   * first thing a report says; empty when nothing changed; absent without a comparison (and in older files).
   */
  changes?: ConfigurationChange[];
}

/**
 * How a run ended:
 * - `complete`: every test of the suite ran (a test may still have been aborted: see TestResult.aborted);
 * - `interrupted`: stopped from outside before the suite finished (SIGINT/SIGTERM, the parent process gone);
 * - `aborted`: tokengate gave up on the run itself (the server died and could not be restarted, a fatal error).
 * An interrupted or aborted run is never promoted to a baseline without `--allow-partial` (analysis/baseline.ts).
 */
export type RunStatus = "complete" | "interrupted" | "aborted";

export interface Results {
  schemaVersion: typeof RESULTS_SCHEMA_VERSION;
  tool: { name: "tokengate"; version: string };
  startedAt: string;
  finishedAt: string;
  /** How the run ended; absent = complete (results written before the status was recorded). */
  status?: RunStatus;
  /** Why the run is interrupted or aborted, in one line (`SIGTERM`, `llama-server exited with code 139`). */
  statusReason?: string;
  suite: { name: string; file?: string; sha256: string };
  environment: EnvironmentFingerprint;
  tests: TestResult[];
  verdict: Verdict;
  /** What limits the server and what to try (src/analysis/bottleneck.ts, recommendations.ts). */
  analysis?: RunAnalysis;
  /**
   * Set by `tokengate ab`: this file is the head arm's first run, judged against the base arm as interleaved pairs;
   * every run's own results are in the files listed (relative to this file's folder).
   */
  ab?: AbSummary;
}

export interface AbSummary {
  /** Complete pairs compared. */
  pairs: number;
  /** The arms in run order: `A B B A A B`. */
  order: string[];
  arms: Array<{ name: string; label: string; runs: string[] }>;
  /** Set when the A/B ended before its last run. */
  stopped?: string;
}
