/**
 * The results data contract (results.json). Versioned: bump RESULTS_SCHEMA_VERSION on any breaking change and keep
 * `schema/results.schema.json` (generated from src/report/results-schema.ts) in step.
 */
import type { TargetFingerprint } from "../target/types.js";
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
}

export interface EnvironmentFingerprint {
  os: string;
  arch: string;
  cpuModel: string;
  cpuCount: number;
  memoryBytes: number;
  node: string;
  gpus: Array<{ name: string; driver?: string; memoryMiB?: number }>;
  cuda?: string;
  target: TargetFingerprint;
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

export interface Verdict {
  overall: VerdictLevel;
  checks: Check[];
  /** Why the overall verdict is what it is, in one line. */
  reason: string;
}

export interface Results {
  schemaVersion: typeof RESULTS_SCHEMA_VERSION;
  tool: { name: "tokengate"; version: string };
  startedAt: string;
  finishedAt: string;
  suite: { name: string; file?: string; sha256: string };
  environment: EnvironmentFingerprint;
  tests: TestResult[];
  verdict: Verdict;
}
