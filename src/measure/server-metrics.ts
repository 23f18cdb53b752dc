import { setTimeout as sleep } from "node:timers/promises";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { httpGet } from "../target/health.js";
import type { Endpoint } from "../target/types.js";
import type { ServerCounters, ServerLoad, ServerLoadSample, ServerObservation, ServerRates } from "./results.js";

/**
 * What the server itself says about a test: llama-server's `/metrics` scraped just before and just after the test
 * (counter deltas -> server-side token rates and batch fill), and `/slots` + the `requests_*` gauges sampled every
 * ~500 ms while it runs (slot occupancy, queueing).
 *
 * Read the counters, never the `prompt_tokens_seconds` / `predicted_tokens_seconds` gauges: llama-server resets those
 * on every scrape (tools/server/server-context.cpp, `metrics_reset_bucket`), so any other scraper (Prometheus, a second
 * tokengate) silently changes what they mean. `n_busy_slots_per_decode` is different: it is cumulative since start
 * (n_busy_slots / n_decode, neither reset), so its value over a window follows from two scrapes and the n_decode delta.
 *
 * Counter semantics (llama.cpp b1-80fb11a, tools/server/server-common.h `server_metrics`):
 * - `tokens_predicted_total` / `tokens_predicted_seconds_total` are added when a request finishes, per request: the
 *   seconds are summed over slots, so tokens/seconds is the speed of ONE stream, not the server's aggregate.
 * - `prompt_seconds_total` is wall time of prompt batches (global, not per slot).
 * - the counters cover the whole test, warm-up requests included.
 *
 * Servers without `/metrics` or without `llamacpp:` counters (vLLM, TGI, Ollama behind the external target) give
 * no observation: the sampler resolves `undefined` and the test result simply has no `server` field.
 */

/** The counters tokengate reads, by their name without the `llamacpp:` prefix. */
const COUNTERS = {
  promptTokens: "prompt_tokens_total",
  promptSeconds: "prompt_seconds_total",
  cachedPromptTokens: "prompt_tokens_cached_total",
  tokensPredicted: "tokens_predicted_total",
  predictedSeconds: "tokens_predicted_seconds_total",
  decodeCalls: "n_decode_total",
  draftTokens: "spec_decode_num_draft_tokens_total",
  draftAccepted: "spec_decode_num_accepted_tokens_total",
  drafts: "spec_decode_num_drafts_total",
} as const satisfies Record<keyof ServerCounters, string>;

/** Counters every llama-server with `--metrics` has; without them a text is not llama-server's. */
const REQUIRED_COUNTERS = [
  "promptTokens",
  "promptSeconds",
  "cachedPromptTokens",
  "tokensPredicted",
  "predictedSeconds",
  "decodeCalls",
] as const;

const PREFIX = "llamacpp:";

/** One parsed `/metrics` answer: every `llamacpp:` sample by its bare name. */
export interface LlamaMetricsSnapshot {
  values: Record<string, number>;
}

/**
 * Parses Prometheus text and keeps llama-server's unlabelled `llamacpp:*` samples. `undefined` when the text is not
 * Prometheus text or has none of llama-server's counters (another server's /metrics).
 */
export function parseLlamaMetrics(text: string): LlamaMetricsSnapshot | undefined {
  let families: ReturnType<typeof parsePrometheusTextFormat>;
  try {
    families = parsePrometheusTextFormat(text);
  } catch {
    return undefined;
  }
  const values: Record<string, number> = {};
  for (const f of families) {
    if (!f.name.startsWith(PREFIX)) continue;
    const sample = f.metrics[0];
    const v = sample?.value === undefined ? Number.NaN : Number(sample.value);
    if (Number.isFinite(v)) values[f.name.slice(PREFIX.length)] = v;
  }
  for (const key of REQUIRED_COUNTERS) if (values[COUNTERS[key]] === undefined) return undefined;
  return { values };
}

/**
 * after - before for each counter. `undefined` when a counter went backwards: the server restarted in between and
 * the deltas would be meaningless.
 */
export function counterDeltas(before: LlamaMetricsSnapshot, after: LlamaMetricsSnapshot): ServerCounters | undefined {
  const delta = (key: keyof ServerCounters): number | undefined => {
    const a = after.values[COUNTERS[key]];
    const b = before.values[COUNTERS[key]];
    return a === undefined || b === undefined ? undefined : a - b;
  };
  const out: Partial<ServerCounters> = {};
  for (const key of Object.keys(COUNTERS) as Array<keyof ServerCounters>) {
    const d = delta(key);
    if (d === undefined) continue;
    // Seconds are printed with 6 significant digits: two readings of an idle counter can differ in the last digit.
    if (d < -1e-6 * Math.max(1, Math.abs(after.values[COUNTERS[key]] ?? 0))) return undefined;
    out[key] = Math.max(0, d);
  }
  for (const key of REQUIRED_COUNTERS) if (out[key] === undefined) return undefined;
  return out as ServerCounters;
}

function ratio(num: number, den: number): number | undefined {
  return den > 0 && Number.isFinite(num) ? num / den : undefined;
}

/** Strips keys whose value is undefined (results stay free of `"x": undefined` noise). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * Rates over a window of `windowS` seconds. Busy slots per decode call: the gauge is n_busy_slots / n_decode since
 * start, so n_busy_slots = gauge * n_decode at each scrape and the window's value is the ratio of the differences
 * (the gauge is printed with 6 significant digits: good to ~1e-6 relative, plenty for the ratio of two large counts).
 */
export function deriveRates(
  c: ServerCounters,
  windowS: number,
  before?: LlamaMetricsSnapshot,
  after?: LlamaMetricsSnapshot,
): ServerRates {
  let busySlotsPerDecode: number | undefined;
  const g0 = before?.values.n_busy_slots_per_decode;
  const g1 = after?.values.n_busy_slots_per_decode;
  const n0 = before?.values[COUNTERS.decodeCalls];
  const n1 = after?.values[COUNTERS.decodeCalls];
  if (g0 !== undefined && g1 !== undefined && n0 !== undefined && n1 !== undefined && n1 > n0) {
    const v = (g1 * n1 - g0 * n0) / (n1 - n0);
    if (Number.isFinite(v) && v >= 0) busySlotsPerDecode = v;
  }
  const draftTokens = c.draftTokens ?? 0;
  return defined<ServerRates>({
    promptTokensPerS: ratio(c.promptTokens, c.promptSeconds),
    decodeTokensPerSPerSlot: ratio(c.tokensPredicted, c.predictedSeconds),
    decodeTokensPerS: ratio(c.tokensPredicted, windowS),
    tokensPerDecodeCall: ratio(c.promptTokens + c.tokensPredicted, c.decodeCalls),
    busySlotsPerDecode,
    promptTimeShare: windowS > 0 ? Math.min(1, c.promptSeconds / windowS) : undefined,
    draftAcceptance: draftTokens > 0 ? ratio(c.draftAccepted ?? 0, draftTokens) : undefined,
    promptCacheHitRatio: ratio(c.cachedPromptTokens, c.promptTokens + c.cachedPromptTokens),
  });
}

/** `/slots` (a JSON array, one object per slot with `is_processing`) -> slot count and busy slots. */
export function busySlots(json: unknown): { slots: number; busy: number } | undefined {
  if (!Array.isArray(json) || json.length === 0) return undefined;
  let busy = 0;
  for (const s of json) {
    if (typeof s !== "object" || s === null || typeof (s as { is_processing?: unknown }).is_processing !== "boolean")
      return undefined;
    if ((s as { is_processing: boolean }).is_processing) busy++;
  }
  return { slots: json.length, busy };
}

/** Default number of timeline points kept per test; older points are thinned (every other one dropped) beyond it. */
export const MAX_TIMELINE_SAMPLES = 240;

/**
 * Load samples with bounded memory: the aggregates (means, maxima, shares) are exact over every sample; the timeline
 * keeps at most `maxTimeline` points by halving its resolution whenever it fills (a 10-minute test at 500 ms keeps
 * one point per 4 s). Pure: the sampler feeds it, tests feed it directly.
 */
export class LoadAccumulator {
  private n = 0;
  private slots: number | undefined;
  private busy = { sum: 0, n: 0, max: 0, allBusy: 0 };
  private processing = { sum: 0, n: 0 };
  private deferred = { sum: 0, n: 0, max: 0, positive: 0 };
  private timeline: ServerLoadSample[] = [];
  private stride = 1;
  private tick = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly maxTimeline = MAX_TIMELINE_SAMPLES,
  ) {
    if (!(maxTimeline >= 2)) throw new RangeError(`maxTimeline must be at least 2, got ${maxTimeline}`);
  }

  /** One sample; `slots` is the slot count when `/slots` answered. Samples with nothing measured are ignored. */
  add(sample: ServerLoadSample, slots?: number): void {
    if (sample.busySlots === undefined && sample.processing === undefined && sample.deferred === undefined) return;
    this.n++;
    if (slots !== undefined) this.slots = slots;
    if (sample.busySlots !== undefined) {
      this.busy.sum += sample.busySlots;
      this.busy.n++;
      this.busy.max = Math.max(this.busy.max, sample.busySlots);
      if (slots !== undefined && sample.busySlots >= slots) this.busy.allBusy++;
    }
    if (sample.processing !== undefined) {
      this.processing.sum += sample.processing;
      this.processing.n++;
    }
    if (sample.deferred !== undefined) {
      this.deferred.sum += sample.deferred;
      this.deferred.n++;
      this.deferred.max = Math.max(this.deferred.max, sample.deferred);
      if (sample.deferred > 0) this.deferred.positive++;
    }
    if (this.tick++ % this.stride === 0) {
      this.timeline.push(defined(sample));
      if (this.timeline.length > this.maxTimeline) {
        this.timeline = this.timeline.filter((_, i) => i % 2 === 0);
        this.stride *= 2;
      }
    }
  }

  summary(): ServerLoad {
    const busyMean = this.busy.n ? this.busy.sum / this.busy.n : undefined;
    return defined<ServerLoad>({
      samples: this.n,
      intervalMs: this.intervalMs,
      slots: this.slots,
      busySlotsMean: busyMean,
      busySlotsMax: this.busy.n ? this.busy.max : undefined,
      occupancy: busyMean !== undefined && this.slots ? busyMean / this.slots : undefined,
      allBusyShare: this.busy.n && this.slots ? this.busy.allBusy / this.busy.n : undefined,
      processingMean: this.processing.n ? this.processing.sum / this.processing.n : undefined,
      deferredMean: this.deferred.n ? this.deferred.sum / this.deferred.n : undefined,
      deferredMax: this.deferred.n ? this.deferred.max : undefined,
      deferredShare: this.deferred.n ? this.deferred.positive / this.deferred.n : undefined,
      timeline: [...this.timeline],
    });
  }
}

export interface ServerSamplerOptions {
  /**
   * Time between load samples (ms). Default 500: at 250 ms the two GETs and their parsing cost tokengate 1.6% of a
   * core against an idle llama-server (bench/soak.ts), above the 1% a sampler may cost.
   */
  intervalMs?: number;
  /** Timeline points kept per test. Default MAX_TIMELINE_SAMPLES (240). */
  maxTimeline?: number;
  /** Per-request limit for the before/after scrapes (ms). Default 5000. */
  scrapeTimeoutMs?: number;
  /** Per-request limit for a load sample (ms). Default 2000: a sample that is late under load is skipped, not waited for. */
  sampleTimeoutMs?: number;
}

/** A running sampler. `stop()` is idempotent and never throws; it resolves `undefined` for servers without counters. */
export interface ServerSampler extends AsyncDisposable {
  stop(): Promise<ServerObservation | undefined>;
}

const NO_SERVER_DATA: ServerSampler = {
  stop: async () => undefined,
  [Symbol.asyncDispose]: async () => {},
};

function authHeaders(endpoint: Endpoint): Record<string, string> | undefined {
  // /metrics and /slots sit behind the API key like every non-public llama-server route.
  return endpoint.apiKey ? { authorization: `Bearer ${endpoint.apiKey}` } : undefined;
}

/** GET /metrics and parse it; `undefined` on any failure (not an error: servers without /metrics are normal). */
export async function scrapeLlamaMetrics(
  url: string,
  opts: { headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<LlamaMetricsSnapshot | undefined> {
  try {
    const r = await httpGet(url, opts);
    return r.status === 200 ? parseLlamaMetrics(r.body) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts observing the server behind `endpoint` for one test. Resolves once the "before" scrape is done, so call it
 * right before the test sends its first request and `stop()` right after its last one ends:
 *
 * ```ts
 * const sampler = await startServerSampler(endpoint);
 * const result = await runTest(ctx, test, trials);
 * const server = await sampler.stop();
 * if (server) result.server = server;
 * ```
 *
 * The samples are extra requests to the server (two small GETs per interval, served by llama-server's task loop as
 * high-priority tasks); at 500 ms that is far below what a benchmark can notice, but it is not zero.
 */
export async function startServerSampler(endpoint: Endpoint, opts: ServerSamplerOptions = {}): Promise<ServerSampler> {
  const metricsUrl = endpoint.metricsUrl;
  if (!metricsUrl) return NO_SERVER_DATA;
  const headers = authHeaders(endpoint);
  const intervalMs = opts.intervalMs ?? 500;
  const scrapeTimeoutMs = opts.scrapeTimeoutMs ?? 5000;
  const sampleTimeoutMs = opts.sampleTimeoutMs ?? 2000;
  // The server reads its counters somewhere between our request and its answer: take the midpoint as the moment.
  const beforeSent = performance.now();
  const before = await scrapeLlamaMetrics(metricsUrl, { headers, timeoutMs: scrapeTimeoutMs });
  if (!before) return NO_SERVER_DATA;
  const t0 = (beforeSent + performance.now()) / 2;

  const slotsUrl = metricsUrl.endsWith("/metrics") ? `${metricsUrl.slice(0, -"/metrics".length)}/slots` : undefined;
  let slotsAvailable = slotsUrl !== undefined;
  const load = new LoadAccumulator(intervalMs, opts.maxTimeline);
  const stopping = new AbortController();
  let scrapeErrors = 0;

  const sampleSlots = async (): Promise<{ slots: number; busy: number } | undefined> => {
    if (!slotsAvailable || !slotsUrl) return undefined;
    const r = await httpGet(slotsUrl, { headers, timeoutMs: sampleTimeoutMs, signal: stopping.signal });
    // `--no-slots` answers 501: stop asking for the rest of the test.
    if (r.status !== 200) {
      slotsAvailable = false;
      return undefined;
    }
    try {
      return busySlots(JSON.parse(r.body));
    } catch {
      slotsAvailable = false;
      return undefined;
    }
  };

  const sampleOnce = async (): Promise<void> => {
    const tMs = Math.max(0, Math.round(performance.now() - t0));
    const [m, s] = await Promise.allSettled([
      httpGet(metricsUrl, { headers, timeoutMs: sampleTimeoutMs, signal: stopping.signal }),
      sampleSlots(),
    ]);
    // A sample cut short by stop() is not an error: the test is over.
    if (stopping.signal.aborted) return;
    const sample: ServerLoadSample = { tMs };
    if (m.status === "fulfilled" && m.value.status === 200) {
      const snap = parseLlamaMetrics(m.value.body);
      if (snap) {
        sample.processing = snap.values.requests_processing;
        sample.deferred = snap.values.requests_deferred;
      } else scrapeErrors++;
    } else scrapeErrors++;
    let slots: number | undefined;
    if (s.status === "fulfilled" && s.value) {
      sample.busySlots = s.value.busy;
      slots = s.value.slots;
    } else if (s.status === "rejected") scrapeErrors++;
    load.add(sample, slots);
  };

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      const started = performance.now();
      await sampleOnce();
      const wait = intervalMs - (performance.now() - started);
      if (wait > 0) await sleep(wait, undefined, { signal: stopping.signal }).catch(() => {});
    }
  })();

  let result: Promise<ServerObservation | undefined> | undefined;
  const stop = (): Promise<ServerObservation | undefined> => {
    result ??= (async () => {
      stopping.abort();
      await loop;
      const afterSent = performance.now();
      const after = await scrapeLlamaMetrics(metricsUrl, { headers, timeoutMs: scrapeTimeoutMs });
      const windowS = ((afterSent + performance.now()) / 2 - t0) / 1000;
      if (!after) return undefined;
      const counters = counterDeltas(before, after);
      if (!counters) return undefined;
      const summary = load.summary();
      return {
        source: "llama-server",
        windowS,
        counters,
        rates: deriveRates(counters, windowS, before, after),
        ...(summary.samples > 0 ? { load: summary } : {}),
        scrapeErrors,
      } satisfies ServerObservation;
    })();
    return result;
  };
  return { stop, [Symbol.asyncDispose]: async () => void (await stop()) };
}
