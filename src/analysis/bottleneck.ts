import type {
  Bottleneck,
  CrossCheck,
  RequestCounts,
  Results,
  ServerObservation,
  TestResult,
  TimeSplit,
} from "../measure/results.js";
import { formatNumber, formatPercent } from "./format.js";
import { busyShare } from "./policy.js";

/**
 * What limits the server, per test, from what was measured. Pure: Results in, findings out. Every finding carries its
 * evidence as lines with numbers, so a reviewer can check the reasoning without rerunning anything.
 *
 * Sources, best first:
 * - the time split of a median request: client TTFT vs the server's own `timings.prompt_ms` (crossCheck) separates
 *   waiting (for a slot, HTTP, tokenization) from prompt processing; e2e - TTFT is decoding;
 * - llama-server `/metrics` counter deltas and `/slots` samples (TestResult.server): slot occupancy, deferred requests,
 *   batch fill, server-side prompt and decode rates;
 * - the client self-check (TestResult.extra.selfCheck) and the client-vs-server decode-rate ratio: is the load
 *   generator itself the bottleneck;
 * - error classes, shortfalls, an aborted test.
 *
 * Thresholds are deliberately coarse (a quarter, a half of the time): the goal is to name the dominant cost, not to
 * rank second-order effects. They are constants below so tests and docs can cite them.
 */

/** A phase that takes at least this share of a median request's e2e time is reported. */
export const PHASE_SHARE_REPORTED = 0.25;
/** ... and is called the limit (severity high) at this share. */
export const PHASE_SHARE_HIGH = 0.6;
/** Waiting below this many ms is HTTP and scheduling noise, whatever its share. */
export const QUEUE_MIN_MS = 5;
/** Share of samples with a deferred request (or with every slot busy) that counts as queueing. */
export const DEFERRED_SHARE_REPORTED = 0.1;
/** Client decode rate / server decode rate below this: the client receives tokens slower than the server makes them. */
export const CLIENT_DECODE_RATIO_LOW = 0.85;
/** Event-loop delay p99 (ms) above which the client's own timing is suspect. */
export const CLIENT_EVENT_LOOP_P99_MS = 50;
/** CPU share of one core used by the client above which it may be the bottleneck. */
export const CLIENT_CPU_SHARE_HIGH = 0.9;
/** Slot occupancy below this under a multi-request load: the load, not the server, set the pace. */
export const OCCUPANCY_LOW = 0.5;
/** Speculative decoding that accepts fewer drafts than this wastes work. */
export const DRAFT_ACCEPTANCE_LOW = 0.5;

/** The client self-check as tokengate reads it (TestResult.extra.selfCheck; absent when the run has none). */
export interface SelfCheckView {
  /** The self-check's own conclusion, when it gives one. */
  clientBound?: boolean;
  eventLoopDelayP99Ms?: number;
  /** CPU time of the client process / wall time (1 = one core busy). */
  cpuShare?: number;
  reason?: string;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * Reads `extra.selfCheck` (src/measure/self-check.ts SelfCheckResult: `clientBound`, `reasons`, `cpuCoreFraction`,
 * `eventLoopDelayMs.p99`) leniently, so results written by older or newer versions still read.
 */
export function readSelfCheck(test: TestResult): SelfCheckView | undefined {
  const sc = obj(test.extra?.selfCheck) ?? obj(test.extra?.clientSelfCheck);
  if (!sc) return undefined;
  const loop = obj(sc.eventLoopDelayMs) ?? obj(sc.eventLoop);
  const percent = num(sc.cpuPercent);
  const view: SelfCheckView = {};
  if (typeof sc.clientBound === "boolean") view.clientBound = sc.clientBound;
  const p99 = num(loop?.p99) ?? num(loop?.p99Ms) ?? num(sc.eventLoopDelayP99Ms);
  if (p99 !== undefined) view.eventLoopDelayP99Ms = p99;
  const cpu = num(sc.cpuCoreFraction) ?? num(sc.cpuShare) ?? (percent === undefined ? undefined : percent / 100);
  if (cpu !== undefined) view.cpuShare = cpu;
  const reasons = Array.isArray(sc.reasons) ? sc.reasons.filter((r): r is string => typeof r === "string") : [];
  if (reasons.length) view.reason = reasons.join("; ");
  else if (typeof sc.reason === "string") view.reason = sc.reason;
  return Object.keys(view).length ? view : undefined;
}

/** The value after a flag (`-np 4`, `--parallel=4`), the last one when repeated, as llama.cpp's parser does. */
export function flagValue(flags: string[], names: string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i] ?? "";
    const eq = f.indexOf("=");
    if (eq > 0 && names.includes(f.slice(0, eq))) value = f.slice(eq + 1);
    else if (names.includes(f)) value = flags[i + 1];
  }
  return value;
}

function flagNumber(flags: string[], names: string[]): number | undefined {
  const v = flagValue(flags, names);
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** The numbers about one test that findings and recommendations are built from. */
export interface TestFacts {
  test: string;
  kind: string;
  /** Requests in flight the load asked for (largest over the test's scenarios / steps). */
  concurrency?: number;
  /** Server slots (`/slots`, else the fingerprint, else `--parallel`). */
  slots?: number;
  /** Context per slot (tokens), from the fingerprint. */
  ctxPerSlot?: number;
  threads?: number;
  cpuCount: number;
  gpu: boolean;
  targetKind: string;
  quantization?: string;
  flags: string[];
  split?: TimeSplit;
  ttftP50?: number;
  e2eP50?: number;
  tpotP50?: number;
  clientDecodeTokensPerSP50?: number;
  outputTokensPerS?: number;
  promptTokensMean?: number;
  outputTokensMean?: number;
  server?: ServerObservation;
  crossCheck?: CrossCheck;
  selfCheck?: SelfCheckView;
  /** Failed requests by error class. */
  errors: RequestCounts["errors"];
  /** The load keeps more requests in flight than the server has slots, or the server deferred some. */
  waitsForSlot: boolean;
  /** Client decode rate p50 per concurrency level, from scenarios that carry one (ramp steps). */
  decodeByConcurrency?: Array<{ concurrency: number; tokPerS: number }>;
  /** TTFT against prompt length across the test's scenarios (least squares over scenario medians). */
  promptScaling?: PromptScaling;
}

export interface PromptScaling {
  fromTokens: number;
  toTokens: number;
  fromTtftMs: number;
  toTtftMs: number;
  /** Slope: extra TTFT per prompt token (ms). */
  msPerToken: number;
}

function maxConcurrency(test: TestResult): number | undefined {
  const values: number[] = [];
  const c = num(test.params.concurrency);
  if (c !== undefined) values.push(c);
  for (const s of test.scenarios) {
    const sc = num(s.params.concurrency);
    if (sc !== undefined) values.push(sc);
  }
  // Open-loop steps (rates) have no concurrency; what they kept in flight is the same question.
  if (!values.length && Array.isArray(test.extra?.steps)) {
    for (const step of test.extra.steps) {
      const max = num(obj(obj(step)?.inFlight)?.max);
      if (max !== undefined) values.push(max);
    }
  }
  if (values.length) return Math.max(...values);
  // A latency test sends one request at a time.
  return test.kind === "latency" ? 1 : undefined;
}

/** Median request time split into waiting, prompt processing and decoding. Undefined without TTFT and e2e. */
export function timeSplit(test: TestResult): TimeSplit | undefined {
  const e2e = test.metrics.e2e_ms?.summary.p50;
  const ttft = test.metrics.ttft_ms?.summary.p50;
  if (e2e === undefined || ttft === undefined || !Number.isFinite(e2e) || !Number.isFinite(ttft)) return undefined;
  const gap = test.crossCheck?.ttftMinusServerPromptMsP50;
  const decodeMs = Math.max(0, e2e - ttft);
  if (gap === undefined || !Number.isFinite(gap)) return { test: test.name, e2eMs: e2e, promptMs: ttft, decodeMs };
  // Medians of differences are not differences of medians: clamp so the parts stay within TTFT.
  const queueMs = Math.min(Math.max(0, gap), ttft);
  return { test: test.name, e2eMs: e2e, queueMs, promptMs: ttft - queueMs, decodeMs };
}

function promptScaling(test: TestResult): PromptScaling | undefined {
  const points: Array<[number, number]> = [];
  for (const s of test.scenarios) {
    const tokens = s.metrics.prompt_tokens?.summary.mean ?? num(s.params.promptTokens);
    const ttft = s.metrics.ttft_ms?.summary.p50;
    if (tokens !== undefined && ttft !== undefined && Number.isFinite(tokens) && Number.isFinite(ttft))
      points.push([tokens, ttft]);
  }
  if (points.length < 2) return undefined;
  points.sort((a, b) => a[0] - b[0]);
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  if (sxx === 0) return undefined;
  const first = points[0]!;
  const last = points[n - 1]!;
  return { fromTokens: first[0], toTokens: last[0], fromTtftMs: first[1], toTtftMs: last[1], msPerToken: sxy / sxx };
}

export function testFacts(test: TestResult, results: Results): TestFacts {
  const target = results.environment.target;
  const flags = target.serverFlags;
  const details = target.details;
  // In-process: node-llama-cpp sequences play the part of llama-server's slots.
  const slots =
    test.server?.load?.slots ??
    num(details.slots) ??
    flagNumber(flags, ["-np", "--parallel"]) ??
    (target.kind === "in-process" ? num(details.sequences) : undefined);
  const threads = num(details.threads) ?? flagNumber(flags, ["-t", "--threads"]);
  const m = test.metrics;
  const facts: TestFacts = {
    test: test.name,
    kind: test.kind,
    cpuCount: results.environment.cpuCount,
    gpu: results.environment.gpus.length > 0,
    targetKind: target.kind,
    flags,
    errors: test.requests.errors,
    waitsForSlot: false,
  };
  const set = <K extends keyof TestFacts>(k: K, v: TestFacts[K] | undefined) => {
    if (v !== undefined && (typeof v !== "number" || Number.isFinite(v))) facts[k] = v;
  };
  set("concurrency", maxConcurrency(test));
  set("slots", slots !== undefined && slots > 0 ? slots : undefined);
  set("ctxPerSlot", num(details.ctxPerSlot));
  set("threads", threads);
  set(
    "quantization",
    target.model?.quantization?.toLowerCase() ??
      (typeof details.modelFtype === "string" ? details.modelFtype.toLowerCase() : undefined),
  );
  set("split", timeSplit(test));
  set("ttftP50", m.ttft_ms?.summary.p50);
  set("e2eP50", m.e2e_ms?.summary.p50);
  set("tpotP50", m.tpot_ms?.summary.p50);
  set("clientDecodeTokensPerSP50", m.decode_tokens_per_s?.summary.p50);
  set("outputTokensPerS", m.output_tokens_per_s?.summary.mean);
  set("promptTokensMean", m.prompt_tokens?.summary.mean);
  set("outputTokensMean", m.output_tokens?.summary.mean);
  set("server", test.server);
  set("crossCheck", test.crossCheck);
  set("selfCheck", readSelfCheck(test));
  set("promptScaling", promptScaling(test));
  const byConcurrency = test.scenarios.flatMap((sc) => {
    const c = num(sc.params.concurrency);
    const v = sc.metrics.decode_tokens_per_s?.summary.p50;
    return c !== undefined && v !== undefined && Number.isFinite(v) && v > 0 ? [{ concurrency: c, tokPerS: v }] : [];
  });
  if (byConcurrency.length >= 2) facts.decodeByConcurrency = byConcurrency;
  facts.waitsForSlot =
    (test.server?.load?.deferredMax ?? 0) > 0 ||
    (facts.concurrency !== undefined && facts.slots !== undefined && facts.concurrency > facts.slots);
  return facts;
}

const f = formatNumber;
const pct = (share: number) => formatPercent(share);
const ms = (v: number) => `${f(v)} ms`;

function severityForShare(share: number): Bottleneck["severity"] {
  return share >= PHASE_SHARE_HIGH ? "high" : share >= 0.35 ? "medium" : "low";
}

function serverRateLines(s: ServerObservation | undefined): string[] {
  if (!s) return [];
  const r = s.rates;
  const parts: string[] = [];
  if (r.decodeTokensPerSPerSlot !== undefined) parts.push(`${f(r.decodeTokensPerSPerSlot)} tok/s per stream`);
  if (r.decodeTokensPerS !== undefined) parts.push(`${f(r.decodeTokensPerS)} tok/s overall`);
  if (r.busySlotsPerDecode !== undefined) parts.push(`${f(r.busySlotsPerDecode)} busy slots per decode call`);
  return parts.length ? [`server decoding: ${parts.join(", ")} (/metrics counter deltas)`] : [];
}

function slotLines(facts: TestFacts): string[] {
  const load = facts.server?.load;
  if (!load || load.slots === undefined) return [];
  const lines: string[] = [];
  if (load.busySlotsMean !== undefined)
    lines.push(
      `slots busy: mean ${f(load.busySlotsMean)} of ${load.slots} (${pct(load.occupancy ?? 0)}), every slot busy in ${pct(load.allBusyShare ?? 0)} of ${load.samples} samples`,
    );
  if (load.deferredShare !== undefined && (load.deferredMax ?? 0) > 0)
    lines.push(
      `requests_deferred > 0 in ${pct(load.deferredShare)} of samples (max ${f(load.deferredMax ?? 0)} waiting)`,
    );
  return lines;
}

/** The single-stream decode rate of the run (a test at concurrency 1), to compare batched tests with. */
function singleStreamDecode(all: TestFacts[]): { test: string; tokPerS: number } | undefined {
  for (const t of all) {
    if (t.concurrency !== 1) continue;
    const v = t.server?.rates.decodeTokensPerSPerSlot ?? t.clientDecodeTokensPerSP50;
    if (v !== undefined && v > 0) return { test: t.test, tokPerS: v };
  }
  return undefined;
}

/**
 * Above this, a batched stream "faster than alone" means the two were measured under different conditions (a noisy
 * machine, a client-bound step): batching never speeds up each stream, so the comparison is left out.
 */
const BATCHING_RATIO_MAX = 1.25;

/**
 * Per-stream decode rate under batching vs alone: 1 = batching is free, 0.5 = each stream runs at half speed.
 * Within one test (ramp steps at concurrency 1 and N) when it has both, since those ran minutes apart at most;
 * else against another test at concurrency 1.
 */
export function batchingEfficiency(facts: TestFacts, all: TestFacts[]): { ratio: number; line: string } | undefined {
  const steps = facts.decodeByConcurrency ?? [];
  const alone = steps.find((s) => s.concurrency === 1);
  const top = steps.reduce<(typeof steps)[number] | undefined>(
    (m, s) => (!m || s.concurrency > m.concurrency ? s : m),
    undefined,
  );
  if (alone && top && top.concurrency > 1) {
    const ratio = top.tokPerS / alone.tokPerS;
    if (ratio > BATCHING_RATIO_MAX) return undefined;
    return {
      ratio,
      line: `per-stream decode rate ${f(top.tokPerS)} tok/s at concurrency ${top.concurrency} vs ${f(alone.tokPerS)} tok/s at concurrency 1 (client p50): ${pct(ratio)} of single-stream speed`,
    };
  }
  if (facts.concurrency === undefined || facts.concurrency < 2) return undefined;
  const single = singleStreamDecode(all);
  const batched = facts.server?.rates.decodeTokensPerSPerSlot ?? facts.clientDecodeTokensPerSP50;
  if (!single || batched === undefined) return undefined;
  const ratio = batched / single.tokPerS;
  if (ratio > BATCHING_RATIO_MAX) return undefined;
  return {
    ratio,
    line: `per-stream decode rate ${f(batched)} tok/s at concurrency ${facts.concurrency} vs ${f(single.tokPerS)} tok/s alone (${single.test}): ${pct(ratio)} of single-stream speed`,
  };
}

/**
 * A max-load search whose repeat disagreed with the first probe at its load (src/suite/max-load.ts `drift` in
 * `extra.searches`): one evidence line per drifted trial, both figures. Read leniently (older results have none).
 */
function searchDrift(test: TestResult): string[] {
  if (test.kind !== "max-load" || !Array.isArray(test.extra?.searches)) return [];
  const lines: string[] = [];
  for (const s of test.extra.searches as unknown[]) {
    const d = obj(obj(s)?.drift);
    if (!d || typeof d.reason !== "string") continue;
    const sloOf = (p: unknown) => {
      const v = obj(p)?.slo;
      return typeof v === "string" ? v : undefined;
    };
    const figures = [sloOf(d.first), sloOf(d.repeat)];
    lines.push(
      d.reason +
        (figures[0] && figures[1] ? ` (first: ${figures[0]}; repeat: ${figures[1]})` : "") +
        (typeof obj(s)?.trial === "number" ? ` [trial ${(obj(s)!.trial as number) + 1}]` : ""),
    );
  }
  return lines;
}

function findingsForTest(test: TestResult, facts: TestFacts, all: TestFacts[]): Bottleneck[] {
  const out: Bottleneck[] = [];
  const add = (b: Omit<Bottleneck, "test">) => out.push({ test: test.name, ...b });

  const machine = test.machine;
  // Reported from the same threshold the verdict's guard uses by default (policy.ts busyShare).
  if (machine && busyShare(machine) !== undefined) {
    add({
      kind: "busy-machine",
      severity: machine.otherShare >= 0.5 ? "high" : "medium",
      title: "other work on the machine took CPU time from this test",
      evidence: [
        `other work used ${pct(machine.otherShare)} of the ${machine.cpus} CPUs' time (${(machine.otherShare * machine.cpus).toFixed(1)} CPUs; max ${pct(machine.otherShareMax)} over 1 s${machine.stealShare > 0.005 ? `, steal ${pct(machine.stealShare)}` : ""}) while tokengate and its server used ${pct(machine.ownShare)}`,
        `load average ${machine.loadavg1[0].toFixed(2)} at the start, ${machine.loadavg1[1].toFixed(2)} at the end`,
      ],
    });
  }

  const drift = searchDrift(test);
  if (drift.length) {
    add({
      kind: "drift",
      severity: "high",
      title: "the server behaved differently at the same load during the search: no boundary is reported",
      evidence: drift,
    });
  }

  if (test.aborted) {
    add({
      kind: "aborted",
      severity: "high",
      title: "the test did not finish",
      evidence: [
        `aborted: ${test.aborted}`,
        `${test.requests.succeeded} of ${test.requests.attempted} requests completed before it stopped`,
      ],
    });
  }

  const r = test.requests;
  if (r.failed > 0 && r.attempted > 0) {
    const rate = r.failed / r.attempted;
    const classes = Object.entries(r.errors)
      .filter(([, n]) => (n ?? 0) > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    add({
      kind: "errors",
      severity: rate >= 0.01 ? "high" : "medium",
      title: "requests fail",
      evidence: [`${r.failed} of ${r.attempted} requests failed (${pct(rate)}): ${classes || "unclassified"}`],
    });
  }

  if (r.shortfalls > 0) {
    const asked = test.params.maxTokens;
    add({
      kind: "shortfall",
      severity: "medium",
      title: "responses are shorter than asked",
      evidence: [
        `${r.shortfalls} of ${r.succeeded} successful requests produced fewer tokens than asked${typeof asked === "number" ? ` (max_tokens ${asked})` : ""}` +
          (facts.outputTokensMean !== undefined ? `; mean output ${f(facts.outputTokensMean)} tokens` : ""),
        ...(facts.ctxPerSlot !== undefined ? [`context per slot: ${facts.ctxPerSlot} tokens`] : []),
      ],
    });
  }

  // The client: its own self-check, then whether it receives tokens slower than the server makes them.
  const sc = facts.selfCheck;
  const clientEvidence: string[] = [];
  const bound = sc?.clientBound === true;
  if (bound && sc?.reason) clientEvidence.push(`self-check: ${sc.reason}`);
  else if (sc?.eventLoopDelayP99Ms !== undefined && (bound || sc.eventLoopDelayP99Ms >= CLIENT_EVENT_LOOP_P99_MS))
    clientEvidence.push(`client event-loop delay p99 ${ms(sc.eventLoopDelayP99Ms)}: timestamps and sends ran late`);
  else if (bound) clientEvidence.push("self-check: the client was saturated");
  if (sc?.cpuShare !== undefined && sc.cpuShare >= CLIENT_CPU_SHARE_HIGH)
    clientEvidence.push(`client CPU ${pct(sc.cpuShare)} of one core`);
  const cc = facts.crossCheck;
  if (cc?.decodeRateRatioP50 !== undefined && cc.samples >= 3 && cc.decodeRateRatioP50 < CLIENT_DECODE_RATIO_LOW)
    clientEvidence.push(
      `client-seen decode rate is ${pct(cc.decodeRateRatioP50)} of the server's own (median of ${cc.samples} requests)`,
    );
  if (clientEvidence.length) {
    const strong = bound || clientEvidence.length >= 2;
    add({
      kind: "client",
      severity: strong ? "high" : "medium",
      title: "the load generator, not the server, may set the pace",
      evidence: clientEvidence,
    });
  }

  const split = facts.split;
  const load = facts.server?.load;
  const deferredShare = load?.deferredShare ?? 0;
  const overSubscribed =
    facts.concurrency !== undefined && facts.slots !== undefined && facts.concurrency > facts.slots;
  if (split && split.e2eMs > 0) {
    const queueMs = split.queueMs ?? 0;
    const queueShare = queueMs / split.e2eMs;
    const queueInTtft = split.queueMs !== undefined ? queueMs / Math.max(queueMs + split.promptMs, 1e-9) : 0;
    const queued =
      (queueMs >= QUEUE_MIN_MS && (queueShare >= PHASE_SHARE_REPORTED || queueInTtft >= 0.5)) ||
      deferredShare >= DEFERRED_SHARE_REPORTED;
    if (queued) {
      const waitingForSlot = facts.waitsForSlot;
      const evidence: string[] = [];
      if (split.queueMs !== undefined && facts.ttftP50 !== undefined)
        evidence.push(
          `client TTFT p50 ${ms(facts.ttftP50)} vs server prompt time ≈ ${ms(split.promptMs)}: ${ms(queueMs)} (${pct(queueShare)} of e2e p50 ${ms(split.e2eMs)}) before prompt processing starts`,
        );
      if (overSubscribed)
        evidence.push(`the load keeps ${facts.concurrency} requests in flight on ${facts.slots} slots`);
      evidence.push(...slotLines(facts));
      add({
        kind: "queueing",
        // Waiting without a slot shortage is overhead worth knowing, not what limits the server.
        severity: waitingForSlot && Math.max(queueShare, deferredShare) >= 0.25 ? "high" : "medium",
        title: waitingForSlot
          ? "requests wait for a free slot"
          : "time passes before prompt processing starts (HTTP, tokenization, scheduling, the server's prompt cache)",
        evidence,
      });
    }

    const promptShare = split.promptMs / split.e2eMs;
    if (promptShare >= PHASE_SHARE_REPORTED) {
      const evidence = [
        `prompt processing ≈ ${ms(split.promptMs)} of e2e p50 ${ms(split.e2eMs)} (${pct(promptShare)})${split.queueMs === undefined ? " (TTFT; no server timings to subtract waiting)" : ""}`,
      ];
      const sr = facts.server?.rates;
      if (sr?.promptTokensPerS !== undefined)
        evidence.push(
          `server prompt rate ${f(sr.promptTokensPerS)} tok/s` +
            (sr.promptTimeShare !== undefined
              ? `; prompt batches took ${pct(sr.promptTimeShare)} of the test's wall time`
              : ""),
        );
      if (facts.promptTokensMean !== undefined) evidence.push(`mean prompt ${f(facts.promptTokensMean)} tokens`);
      const ps = facts.promptScaling;
      if (ps && ps.msPerToken > 0)
        evidence.push(
          `TTFT p50 grows from ${ms(ps.fromTtftMs)} at ${f(ps.fromTokens)} prompt tokens to ${ms(ps.toTtftMs)} at ${f(ps.toTokens)} (${f(ps.msPerToken * 100)} ms per 100 tokens)`,
        );
      if (sr?.promptCacheHitRatio !== undefined && sr.promptCacheHitRatio > 0)
        evidence.push(`prompt cache served ${pct(sr.promptCacheHitRatio)} of prompt tokens`);
      add({
        kind: "prefill",
        severity: severityForShare(promptShare),
        title: "prompt processing (prefill) dominates the time to first token",
        evidence,
      });
    }

    const decodeShare = split.decodeMs / split.e2eMs;
    if (decodeShare >= PHASE_SHARE_REPORTED) {
      const evidence = [
        `decoding ≈ ${ms(split.decodeMs)} of e2e p50 ${ms(split.e2eMs)} (${pct(decodeShare)})` +
          (facts.tpotP50 !== undefined ? `: ${ms(facts.tpotP50)} per token (TPOT p50)` : "") +
          (facts.outputTokensMean !== undefined ? ` over ${f(facts.outputTokensMean)} tokens` : ""),
        ...serverRateLines(facts.server),
      ];
      const eff = batchingEfficiency(facts, all);
      if (eff) evidence.push(eff.line);
      add({
        kind: "decode",
        severity: severityForShare(decodeShare),
        title: "token generation (decode) dominates the request time",
        evidence,
      });
    }
  } else if (deferredShare >= DEFERRED_SHARE_REPORTED) {
    add({ kind: "queueing", severity: "medium", title: "requests wait for a free slot", evidence: slotLines(facts) });
  }

  // A multi-request load that leaves slots idle measured the load, not the server.
  if (
    load?.occupancy !== undefined &&
    load.slots !== undefined &&
    load.slots >= 2 &&
    facts.concurrency !== undefined &&
    facts.concurrency >= 2 &&
    load.occupancy < OCCUPANCY_LOW &&
    deferredShare === 0
  ) {
    add({
      kind: "underloaded",
      severity: "low",
      title: "the load leaves slots idle: throughput here is the load's, not the server's limit",
      evidence: [...slotLines(facts), `the load keeps at most ${facts.concurrency} requests in flight`],
    });
  }

  const sr = facts.server?.rates;
  const draftTokens = facts.server?.counters.draftTokens ?? 0;
  if (sr?.draftAcceptance !== undefined && draftTokens > 0 && sr.draftAcceptance < DRAFT_ACCEPTANCE_LOW) {
    add({
      kind: "speculative",
      severity: "medium",
      title: "speculative decoding rejects most drafts",
      evidence: [
        `${f(facts.server?.counters.draftAccepted ?? 0)} of ${f(draftTokens)} draft tokens accepted (${pct(sr.draftAcceptance)})`,
      ],
    });
  }
  return out;
}

const SEVERITY_ORDER = { high: 0, medium: 1, low: 2 } as const;

export interface BottleneckAnalysis {
  facts: TestFacts[];
  timeSplits: TimeSplit[];
  bottlenecks: Bottleneck[];
}

/** Findings for every test, most severe first (stable within a severity: test order, then rule order). */
export function analyzeBottlenecks(results: Results): BottleneckAnalysis {
  const facts = results.tests.map((t) => testFacts(t, results));
  const bottlenecks = results.tests.flatMap((t, i) => findingsForTest(t, facts[i]!, facts));
  bottlenecks.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
  return {
    facts,
    timeSplits: facts.flatMap((x) => (x.split ? [x.split] : [])),
    bottlenecks,
  };
}
