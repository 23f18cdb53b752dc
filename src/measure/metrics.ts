import { NS_PER_MS } from "./clock.js";
import { encodeHistogram, histogramOf, pointSummary, summarize } from "./histogram.js";
import type { RequestRecord } from "./record.js";
import type {
  Better,
  CrossCheck,
  MetricAliases,
  MetricResult,
  MetricSummary,
  Metrics,
  RequestCounts,
} from "./results.js";

/**
 * Metric definitions, exactly as in docs/metrics.md (and shared/ARCHITECTURE.md). Recording happens in the client;
 * this module only computes. Per-request metrics are computed from successful, measured requests.
 */
export interface MetricDef {
  unit: string;
  better: Better;
  /** Per request (histogram + percentiles) or one aggregate value per trial. */
  perRequest: boolean;
  description: string;
  aliases?: MetricAliases;
}

export const METRICS = {
  ttft_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "request start -> first SSE event that carries generated text",
    aliases: { vllm: "ttft_ms", guidellm: "time_to_first_token_ms", aiperf: "time_to_first_token" },
  },
  ttfb_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "request start -> first byte of the response body",
  },
  e2e_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "request start -> end of stream",
    aliases: { vllm: "e2el_ms", guidellm: "request_latency", aiperf: "request_latency" },
  },
  tpot_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "(e2e - ttft) / (output_tokens - 1)",
    aliases: { vllm: "tpot_ms", guidellm: "time_per_output_token_ms", aiperf: "inter_token_latency" },
  },
  itl_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "gaps between successive content events",
    aliases: { vllm: "itl_ms", guidellm: "inter_token_latency_ms" },
  },
  decode_tokens_per_s: {
    unit: "tok/s",
    better: "higher",
    perRequest: true,
    description: "per request: (output_tokens - 1) / ((e2e - ttft) / 1000)",
    aliases: { aiperf: "output_token_throughput_per_user" },
  },
  e2e_tokens_per_s: {
    unit: "tok/s",
    better: "higher",
    perRequest: true,
    description: "per request: output_tokens / (e2e / 1000) (the seed's TPS: tokens over total time, TTFT included)",
  },
  output_tokens: {
    unit: "tok",
    better: "higher",
    perRequest: true,
    description:
      "usage.completion_tokens, else timings.predicted_n, else tokens_predicted; chunks only as a flagged last resort",
  },
  prompt_tokens: {
    unit: "tok",
    better: "lower",
    perRequest: true,
    description: "usage.prompt_tokens, else timings.prompt_n + cache_n",
  },
  output_tokens_per_s: {
    unit: "tok/s",
    better: "higher",
    perRequest: false,
    description: "aggregate: sum of output tokens / measured window",
    aliases: { vllm: "output_throughput", guidellm: "output_tokens_per_second", aiperf: "output_token_throughput" },
  },
  requests_per_s: {
    unit: "req/s",
    better: "higher",
    perRequest: false,
    description: "completed requests / measured window",
    aliases: { vllm: "request_throughput", guidellm: "requests_per_second", aiperf: "request_throughput" },
  },
  error_rate: {
    unit: "ratio",
    better: "lower",
    perRequest: false,
    description: "failed / attempted (by class: connect, http, timeout, stream, parse, cancelled)",
  },
  schedule_lag_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "open loop: actual start - intended start (every sent request, failed ones included)",
    aliases: { vllm: "client_queue_time" },
  },
  ttft_corrected_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "open loop: intended start -> first token (corrected for coordinated omission)",
  },
  e2e_corrected_ms: {
    unit: "ms",
    better: "lower",
    perRequest: true,
    description: "open loop: intended start -> end of stream (corrected for coordinated omission)",
    aliases: { vllm: "e2el_including_client_queue" },
  },
  goodput_rps: {
    unit: "req/s",
    better: "higher",
    perRequest: false,
    description:
      "requests per second that met every SLO latency bound (open loop: measured from the intended start) / measured window",
    aliases: { vllm: "request_goodput", guidellm: "request_goodput" },
  },
  max_sustainable_concurrency: {
    unit: "users",
    better: "higher",
    perRequest: false,
    description: "max-load / ramp: the highest concurrency whose step met the SLO (confirmed by a repeat in max-load)",
  },
  max_sustainable_rps: {
    unit: "req/s",
    better: "higher",
    perRequest: false,
    description: "max-load / ramp: the highest arrival rate whose step met the SLO (confirmed by a repeat in max-load)",
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;

/** The order reports (report.md, report.html) list a test's metrics in. */
export const REPORT_METRIC_ORDER: readonly string[] = [
  "ttft_ms",
  "ttfb_ms",
  "e2e_ms",
  "tpot_ms",
  "itl_ms",
  "decode_tokens_per_s",
  "e2e_tokens_per_s",
  "output_tokens",
  "prompt_tokens",
  "output_tokens_per_s",
  "requests_per_s",
  "error_rate",
];

/** Per-request values of one record (undefined where the metric does not apply, e.g. tpot with one token). */
export function requestValues(r: RequestRecord): Partial<Record<MetricKey, number | number[]>> {
  // Schedule lag is the client's, not the server's: it counts for every request the open loop sent.
  const lag = r.openLoop ? { schedule_lag_ms: (r.startNs - r.intendedStartNs) / NS_PER_MS } : {};
  if (!r.ok) return lag;
  const out: Partial<Record<MetricKey, number | number[]>> = { ...lag };
  const e2eMs = (r.endNs - r.startNs) / NS_PER_MS;
  out.e2e_ms = e2eMs;
  if (r.firstByteNs !== undefined) out.ttfb_ms = (r.firstByteNs - r.startNs) / NS_PER_MS;
  if (r.outputTokens !== undefined) {
    out.output_tokens = r.outputTokens;
    if (e2eMs > 0) out.e2e_tokens_per_s = r.outputTokens / (e2eMs / 1000);
  }
  if (r.promptTokens !== undefined) out.prompt_tokens = r.promptTokens;
  if (r.firstTokenNs !== undefined) {
    const ttftMs = (r.firstTokenNs - r.startNs) / NS_PER_MS;
    out.ttft_ms = ttftMs;
    const decodeMs = e2eMs - ttftMs;
    if (r.outputTokens !== undefined && r.outputTokens > 1 && decodeMs > 0) {
      out.tpot_ms = decodeMs / (r.outputTokens - 1);
      out.decode_tokens_per_s = (r.outputTokens - 1) / (decodeMs / 1000);
    }
  }
  if (r.openLoop) {
    out.e2e_corrected_ms = (r.endNs - r.intendedStartNs) / NS_PER_MS;
    if (r.firstTokenNs !== undefined) out.ttft_corrected_ms = (r.firstTokenNs - r.intendedStartNs) / NS_PER_MS;
  }
  if (r.contentEventNs.length > 1) {
    const gaps: number[] = [];
    for (let i = 1; i < r.contentEventNs.length; i++) {
      gaps.push((r.contentEventNs[i]! - r.contentEventNs[i - 1]!) / NS_PER_MS);
    }
    out.itl_ms = gaps;
  }
  return out;
}

/** The measured window of a set of records: first start -> last end (ns). */
export function windowNs(records: RequestRecord[]): number {
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const r of records) {
    if (r.startNs < first) first = r.startNs;
    if (r.endNs > last) last = r.endNs;
  }
  return records.length ? last - first : 0;
}

export function countRequests(records: RequestRecord[]): RequestCounts {
  const counts: RequestCounts = { attempted: records.length, succeeded: 0, failed: 0, errors: {}, shortfalls: 0 };
  for (const r of records) {
    if (r.ok) counts.succeeded++;
    else {
      counts.failed++;
      const cls = r.errorClass ?? "stream";
      counts.errors[cls] = (counts.errors[cls] ?? 0) + 1;
    }
    if (r.shortfall) counts.shortfalls++;
  }
  return counts;
}

export interface TrialInput {
  records: RequestRecord[];
  /** Measured window in ns; defaults to first start -> last end of the records. */
  windowNs?: number;
}

/**
 * Metrics over K trials. Per-request metrics: summary and histogram over all requests of all trials, plus a summary
 * per trial. Aggregate metrics: one value per trial; the summary is over the trial values.
 */
export function computeMetrics(trials: TrialInput[]): Metrics {
  const metrics: Metrics = {};
  const perTrialValues = trials.map((t) => {
    const values: Partial<Record<MetricKey, number[]>> = {};
    for (const r of t.records) {
      for (const [k, v] of Object.entries(requestValues(r)) as Array<[MetricKey, number | number[]]>) {
        values[k] ??= [];
        const list = values[k];
        if (Array.isArray(v)) list.push(...v);
        else list.push(v);
      }
    }
    return values;
  });
  for (const [key, def] of Object.entries(METRICS) as Array<[MetricKey, MetricDef]>) {
    if (!def.perRequest) continue;
    const all = perTrialValues.flatMap((v) => v[key] ?? []);
    if (all.length === 0) continue;
    const h = histogramOf(all);
    metrics[key] = {
      unit: def.unit,
      better: def.better,
      summary: summarize(all, h),
      histogram: encodeHistogram(h),
      trials: perTrialValues.map((v) => summarize(v[key] ?? [])),
      ...(def.aliases ? { aliases: def.aliases } : {}),
    };
  }
  const aggregates: Record<"output_tokens_per_s" | "requests_per_s" | "error_rate", number[]> = {
    output_tokens_per_s: [],
    requests_per_s: [],
    error_rate: [],
  };
  for (const t of trials) {
    const measured = t.records;
    if (measured.length === 0) continue;
    const w = (t.windowNs ?? windowNs(measured)) / 1e9;
    const ok = measured.filter((r) => r.ok);
    const tokens = ok.reduce((s, r) => s + (r.outputTokens ?? 0), 0);
    aggregates.output_tokens_per_s.push(w > 0 ? tokens / w : 0);
    aggregates.requests_per_s.push(w > 0 ? ok.length / w : 0);
    aggregates.error_rate.push((measured.length - ok.length) / measured.length);
  }
  for (const [key, values] of Object.entries(aggregates) as Array<[keyof typeof aggregates, number[]]>) {
    if (values.length === 0) continue;
    const def: MetricDef = METRICS[key];
    metrics[key] = aggregateMetric(def, values);
  }
  return metrics;
}

function aggregateMetric(def: MetricDef, trialValues: number[]): MetricResult {
  const summary: MetricSummary = trialValues.length === 1 ? pointSummary(trialValues[0]!) : summarize(trialValues);
  return {
    unit: def.unit,
    better: def.better,
    summary,
    trials: trialValues.map(pointSummary),
    ...(def.aliases ? { aliases: def.aliases } : {}),
  };
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Client vs server: client TTFT minus the server's own prompt time is what the client adds (queueing, HTTP, the first
 * token's decode); client decode rate over the server's `predicted_per_second` should be ~1.
 */
export function crossCheck(records: RequestRecord[]): CrossCheck {
  const ttftGap: number[] = [];
  const decodeRatio: number[] = [];
  for (const r of records) {
    if (!r.ok || !r.serverTimings) continue;
    const v = requestValues(r);
    if (typeof v.ttft_ms === "number" && r.serverTimings.prompt_ms !== undefined) {
      ttftGap.push(v.ttft_ms - r.serverTimings.prompt_ms);
    }
    if (typeof v.decode_tokens_per_s === "number" && r.serverTimings.predicted_per_second) {
      decodeRatio.push(v.decode_tokens_per_s / r.serverTimings.predicted_per_second);
    }
  }
  return {
    ttftMinusServerPromptMsP50: median(ttftGap),
    decodeRateRatioP50: median(decodeRatio),
    samples: Math.max(ttftGap.length, decodeRatio.length),
  };
}
