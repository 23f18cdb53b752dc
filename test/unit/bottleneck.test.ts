import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  analyzeBottlenecks,
  batchingEfficiency,
  flagValue,
  readSelfCheck,
  testFacts,
  timeSplit,
} from "../../src/analysis/bottleneck.js";
import { analyzeRun } from "../../src/analysis/recommendations.js";
import type {
  Bottleneck,
  EnvironmentFingerprint,
  MetricResult,
  MetricSummary,
  Results,
  ServerObservation,
  TestResult,
} from "../../src/measure/results.js";
import { resultsSchema } from "../../src/report/results-schema.js";

// Hand-built results: each test below sets up exactly the numbers one rule reads.

function summary(p50: number, count = 20): MetricSummary {
  return {
    count,
    mean: p50,
    stddev: p50 * 0.1,
    min: p50 * 0.8,
    p50,
    p90: p50 * 1.2,
    p95: p50 * 1.3,
    p99: p50 * 1.5,
    max: p50 * 2,
  };
}

function metric(p50: number, unit: string, better: "lower" | "higher" = "lower"): MetricResult {
  return { unit, better, summary: summary(p50), trials: [summary(p50)] };
}

interface TestSpec {
  name?: string;
  kind?: string;
  concurrency?: number;
  ttftMs?: number;
  e2eMs?: number;
  /** crossCheck.ttftMinusServerPromptMsP50; undefined = no server timings. */
  gapMs?: number;
  decodeRatio?: number;
  promptTokens?: number;
  outputTokens?: number;
  tpotMs?: number;
  decodeTokPerS?: number;
  server?: ServerObservation;
  extra?: Record<string, unknown>;
  requests?: Partial<TestResult["requests"]>;
  scenarios?: TestResult["scenarios"];
  aborted?: string;
}

function makeTest(s: TestSpec): TestResult {
  const ttft = s.ttftMs ?? 20;
  const e2e = s.e2eMs ?? 200;
  const out = s.outputTokens ?? 32;
  const t: TestResult = {
    name: s.name ?? "t",
    kind: s.kind ?? "throughput",
    params: s.concurrency === undefined ? {} : { concurrency: s.concurrency, maxTokens: out },
    metrics: {
      ttft_ms: metric(ttft, "ms"),
      e2e_ms: metric(e2e, "ms"),
      tpot_ms: metric(s.tpotMs ?? (e2e - ttft) / (out - 1), "ms"),
      decode_tokens_per_s: metric(s.decodeTokPerS ?? (1000 * (out - 1)) / (e2e - ttft), "tok/s", "higher"),
      prompt_tokens: metric(s.promptTokens ?? 100, "tok"),
      output_tokens: metric(out, "tok", "higher"),
    },
    scenarios: s.scenarios ?? [],
    requests: { attempted: 100, succeeded: 100, failed: 0, errors: {}, shortfalls: 0, ...s.requests },
    windowS: 10,
    trials: 1,
  };
  if (s.gapMs !== undefined || s.decodeRatio !== undefined)
    t.crossCheck = {
      ...(s.gapMs !== undefined ? { ttftMinusServerPromptMsP50: s.gapMs } : {}),
      ...(s.decodeRatio !== undefined ? { decodeRateRatioP50: s.decodeRatio } : {}),
      samples: 100,
    };
  if (s.server) t.server = s.server;
  if (s.extra) t.extra = s.extra;
  if (s.aborted) t.aborted = s.aborted;
  return t;
}

function env(over: Partial<EnvironmentFingerprint["target"]> = {}, gpus: EnvironmentFingerprint["gpus"] = []) {
  return {
    os: "linux",
    arch: "x64",
    cpuModel: "test cpu",
    cpuCount: 8,
    memoryBytes: 16e9,
    node: "v24",
    gpus,
    target: {
      kind: "llama-server" as const,
      build: "b1-80fb11a",
      serverFlags: ["--metrics", "-t", "8", "--parallel", "4", "-c", "4096"],
      model: { quantization: "q4_k_m" },
      details: { threads: 8, slots: 4, ctxPerSlot: 1024 },
      ...over,
    },
  };
}

function run(tests: TestResult[], environment = env()): Results {
  return {
    schemaVersion: 1,
    tool: { name: "tokengate", version: "0.0.0" },
    startedAt: "2026-11-29T00:00:00Z",
    finishedAt: "2026-11-29T00:01:00Z",
    suite: { name: "s", sha256: "0".repeat(64) },
    environment,
    tests,
    verdict: { overall: "pass", checks: [], reason: "" },
  };
}

function server(over: {
  slots?: number;
  busyMean?: number;
  deferredShare?: number;
  deferredMax?: number;
  decodePerSlot?: number;
  promptPerS?: number;
  draftTokens?: number;
  draftAccepted?: number;
  cached?: number;
}): ServerObservation {
  const slots = over.slots ?? 4;
  const busy = over.busyMean ?? slots;
  return {
    source: "llama-server",
    windowS: 10,
    counters: {
      promptTokens: 1000,
      promptSeconds: 1000 / (over.promptPerS ?? 5000),
      cachedPromptTokens: over.cached ?? 0,
      tokensPredicted: 3200,
      predictedSeconds: 3200 / (over.decodePerSlot ?? 50),
      decodeCalls: 900,
      ...(over.draftTokens !== undefined
        ? { draftTokens: over.draftTokens, draftAccepted: over.draftAccepted ?? 0 }
        : {}),
    },
    rates: {
      promptTokensPerS: over.promptPerS ?? 5000,
      decodeTokensPerSPerSlot: over.decodePerSlot ?? 50,
      decodeTokensPerS: 320,
      busySlotsPerDecode: busy,
      promptTimeShare: 0.02,
      ...(over.draftTokens ? { draftAcceptance: (over.draftAccepted ?? 0) / over.draftTokens } : {}),
      promptCacheHitRatio: (over.cached ?? 0) / (1000 + (over.cached ?? 0)),
    },
    load: {
      samples: 40,
      intervalMs: 250,
      slots,
      busySlotsMean: busy,
      busySlotsMax: Math.ceil(busy),
      occupancy: busy / slots,
      allBusyShare: busy >= slots ? 0.9 : 0,
      deferredMean: over.deferredShare ? 1 : 0,
      deferredMax: over.deferredMax ?? (over.deferredShare ? 2 : 0),
      deferredShare: over.deferredShare ?? 0,
      timeline: [],
    },
    scrapeErrors: 0,
  };
}

const kinds = (bs: Bottleneck[]) => bs.map((b) => b.kind);

describe("time split", () => {
  it("splits TTFT into waiting and prompt processing with server timings, and decoding is the rest", () => {
    const s = timeSplit(makeTest({ ttftMs: 30, e2eMs: 130, gapMs: 10 }))!;
    expect(s).toEqual({ test: "t", e2eMs: 130, queueMs: 10, promptMs: 20, decodeMs: 100 });
  });
  it("without server timings the whole TTFT counts as prompt processing (no waiting figure)", () => {
    const s = timeSplit(makeTest({ ttftMs: 30, e2eMs: 130 }))!;
    expect(s.queueMs).toBeUndefined();
    expect(s.promptMs).toBe(30);
  });
  it("clamps a gap larger than TTFT (medians of differences are not differences of medians)", () => {
    const s = timeSplit(makeTest({ ttftMs: 30, e2eMs: 130, gapMs: 45 }))!;
    expect(s.queueMs).toBe(30);
    expect(s.promptMs).toBe(0);
  });
});

describe("bottleneck rules", () => {
  it("decode-bound: decoding dominates; try quantization of an f16 model, speculative decoding, threads on CPU", () => {
    const results = run(
      [
        makeTest({
          concurrency: 1,
          kind: "latency",
          ttftMs: 12,
          e2eMs: 400,
          gapMs: 1,
          server: server({ slots: 4, busyMean: 1 }),
        }),
      ],
      env({ model: { quantization: "f16" }, details: { threads: 4, slots: 4 }, serverFlags: ["-t", "4"] }),
    );
    const a = analyzeRun(results);
    const decode = a.bottlenecks.find((b) => b.kind === "decode")!;
    expect(decode.severity).toBe("high");
    expect(decode.evidence[0]).toMatch(/decoding ≈ 388 ms of e2e p50 400 ms \(97%\)/);
    expect(decode.evidence.join("\n")).toMatch(/50 tok\/s per stream/);
    const knobs = a.recommendations.map((r) => r.knob);
    expect(knobs).toEqual(expect.arrayContaining(["quantization", "speculative", "threads"]));
    expect(a.recommendations.find((r) => r.knob === "quantization")!.action).toMatch(/now f16/);
    expect(a.recommendations.find((r) => r.knob === "threads")!.flags).toEqual(["-t", "8"]);
    // A latency test at concurrency 1 is not "underloaded": it is meant to run one request at a time.
    expect(kinds(a.bottlenecks)).not.toContain("underloaded");
  });

  it("no quantization advice for an already small quantization; no threads advice with a GPU", () => {
    const results = run(
      [makeTest({ concurrency: 1, ttftMs: 12, e2eMs: 400, gapMs: 1 })],
      env({ model: { quantization: "q4_k_m" } }, [{ name: "NVIDIA H200" }]),
    );
    const knobs = analyzeRun(results).recommendations.map((r) => r.knob);
    expect(knobs).not.toContain("quantization");
    expect(knobs).not.toContain("threads");
    expect(knobs).toContain("speculative");
  });

  it("prefill-bound: TTFT dominates; flash attention, bigger ubatch, prompt cache; scaling with prompt length as evidence", () => {
    const scenarios: TestResult["scenarios"] = [16, 512, 2048].map((p) => ({
      name: `prompt_${p}`,
      params: { promptTokens: p },
      metrics: { ttft_ms: metric(5 + p * 0.2, "ms"), prompt_tokens: metric(p + 8, "tok") },
      requests: { attempted: 5, succeeded: 5, failed: 0, errors: {}, shortfalls: 0 },
    }));
    const results = run([
      makeTest({
        kind: "latency",
        concurrency: 1,
        ttftMs: 300,
        e2eMs: 400,
        gapMs: 2,
        promptTokens: 1500,
        scenarios,
        server: server({ busyMean: 1, promptPerS: 4000 }),
      }),
    ]);
    const a = analyzeRun(results);
    const prefill = a.bottlenecks.find((b) => b.kind === "prefill")!;
    expect(prefill.severity).toBe("high");
    expect(prefill.evidence.join("\n")).toMatch(/prompt processing ≈ 298 ms of e2e p50 400 ms \(74.5%\)/);
    expect(prefill.evidence.join("\n")).toMatch(/server prompt rate 4000 tok\/s/);
    expect(prefill.evidence.join("\n")).toMatch(
      /TTFT p50 grows from 8.2 ms at 24 prompt tokens to 415 ms at 2056 \(20 ms per 100 tokens\)/,
    );
    const byKnob = Object.fromEntries(a.recommendations.map((r) => [r.knob, r]));
    expect(byKnob["flash-attention"]?.flags).toEqual(["-fa", "on"]);
    expect(byKnob["batch-size"]?.flags).toEqual(["-ub", "2048", "-b", "2048"]);
    expect(byKnob["prompt-cache"]?.flags).toEqual(["--cache-reuse", "256"]);
  });

  it("the in-process target gets its own knobs (sequences), never llama-server flags or more threads", () => {
    const inProcess = env({
      kind: "in-process",
      serverFlags: [],
      model: { quantization: "f16" },
      details: { threads: 1, sequences: 4, contextSize: 2048 },
    });
    const a = analyzeRun(
      run(
        [
          makeTest({ name: "q", concurrency: 8, ttftMs: 250, e2eMs: 600, gapMs: 230 }),
          makeTest({ name: "p", concurrency: 1, ttftMs: 300, e2eMs: 400, gapMs: 2, promptTokens: 1500 }),
          makeTest({ name: "d", concurrency: 1, ttftMs: 12, e2eMs: 400, gapMs: 1 }),
        ],
        inProcess,
      ),
    );
    expect(a.bottlenecks.find((b) => b.test === "q" && b.kind === "queueing")?.evidence.join("\n")).toMatch(
      /8 requests in flight on 4 slots/,
    );
    const parallel = a.recommendations.find((r) => r.knob === "parallel")!;
    expect(parallel.action).toBe("try target.sequences: 8 in the suite (now 4)");
    expect(parallel.flags).toBeUndefined();
    expect(a.recommendations.every((r) => r.flags === undefined)).toBe(true);
    expect(a.recommendations.map((r) => r.knob)).toEqual(expect.arrayContaining(["parallel", "quantization"]));
    expect(a.recommendations.map((r) => r.knob)).not.toContain("threads");
  });

  it("an external server that is not llama-server gets no llama-server flags", () => {
    const external = env({ kind: "external", serverFlags: [], details: {} });
    delete (external.target as { model?: unknown }).model;
    const a = analyzeRun(run([makeTest({ concurrency: 1, ttftMs: 300, e2eMs: 400 })], external));
    expect(a.bottlenecks.map((b) => b.kind)).toContain("prefill");
    expect(a.recommendations.filter((r) => r.flags)).toEqual([]);
  });

  it("time before the prompt without a slot shortage: try --cache-ram 0, unless set; unknown on an external server", () => {
    const test = () =>
      makeTest({ concurrency: 1, ttftMs: 150, e2eMs: 250, gapMs: 120, server: server({ slots: 8, busyMean: 1 }) });
    const cacheRam = (flags: string[], over: Partial<EnvironmentFingerprint["target"]> = {}) =>
      analyzeRun(run([test()], env({ serverFlags: flags, ...over }))).recommendations.find((r) =>
        r.flags?.includes("--cache-ram"),
      );
    const own = cacheRam(["--parallel", "8"]);
    expect(own?.action).toBe("if prompts rarely repeat a prefix: try --cache-ram 0 (now 8192 MiB, the default)");
    expect(own?.evidence.join("\n")).toMatch(/120 ms .* before prompt processing starts/);
    expect(cacheRam(["--parallel", "8", "--cache-ram", "4096"])?.action).toMatch(/now 4096\)$/);
    expect(cacheRam(["--parallel", "8", "-cram", "0"])).toBeUndefined();
    // An external llama-server (its /metrics say so): flags unknown.
    expect(cacheRam([], { kind: "external", details: {} })?.action).toMatch(/now unknown: an external server's flags/);
    // Waiting for a slot is a different finding with its own advice (the slot queueing test below checks it has none).
  });

  it("no flash-attention advice when it is already on; ubatch advice respects the flags set", () => {
    const results = run(
      [makeTest({ concurrency: 2, ttftMs: 300, e2eMs: 400, gapMs: 2, promptTokens: 300 })],
      env({ serverFlags: ["-fa", "on", "-ub", "1024", "-b", "4096", "--parallel", "4"] }),
    );
    const recs = analyzeRun(results).recommendations;
    expect(recs.map((r) => r.knob)).not.toContain("flash-attention");
    expect(recs.find((r) => r.knob === "batch-size")?.flags).toEqual(["-ub", "2048", "-b", "4096"]);
  });

  it("slot queueing: more requests in flight than slots and deferred requests; try more --parallel with -c scaled", () => {
    const results = run([
      makeTest({
        concurrency: 8,
        ttftMs: 250,
        e2eMs: 600,
        gapMs: 230,
        server: server({ slots: 4, busyMean: 3.9, deferredShare: 0.5, deferredMax: 4 }),
      }),
    ]);
    const a = analyzeRun(results);
    const q = a.bottlenecks.find((b) => b.kind === "queueing")!;
    expect(q.title).toBe("requests wait for a free slot");
    // More slots, not the prompt cache: the wait is for a slot.
    expect(a.recommendations.some((r) => r.flags?.includes("--cache-ram"))).toBe(false);
    expect(q.severity).toBe("high");
    expect(q.evidence.join("\n")).toMatch(/230 ms \(38.3% of e2e p50 600 ms\) before prompt processing starts/);
    expect(q.evidence.join("\n")).toMatch(/8 requests in flight on 4 slots/);
    expect(q.evidence.join("\n")).toMatch(/requests_deferred > 0 in 50% of samples \(max 4 waiting\)/);
    const parallel = a.recommendations.find((r) => r.knob === "parallel")!;
    expect(parallel.flags).toEqual(["--parallel", "8", "-c", "8192"]);
    expect(parallel.action).toMatch(/now 4.*1024 tokens per slot/);
    const kv = a.recommendations.find((r) => r.knob === "kv-cache-type")!;
    expect(kv.flags).toEqual(["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"]);
    // Most important first: the high-severity parallel advice comes before the low-severity KV advice.
    expect(a.recommendations.indexOf(parallel)).toBeLessThan(a.recommendations.indexOf(kv));
  });

  it("waiting without a slot shortage is overhead (medium), and --parallel is not the answer", () => {
    const results = run([
      makeTest({
        kind: "latency",
        concurrency: 1,
        ttftMs: 12,
        e2eMs: 40,
        gapMs: 10,
        server: server({ slots: 4, busyMean: 1 }),
      }),
    ]);
    const a = analyzeRun(results);
    const q = a.bottlenecks.find((b) => b.kind === "queueing")!;
    expect(q.title).toMatch(/HTTP, tokenization, scheduling/);
    expect(q.severity).toBe("medium");
    expect(a.recommendations.map((r) => r.knob)).not.toContain("parallel");
  });

  it("a few ms of waiting is noise, not a finding", () => {
    const a = analyzeBottlenecks(run([makeTest({ concurrency: 1, ttftMs: 4, e2eMs: 10, gapMs: 3 })]));
    expect(kinds(a.bottlenecks)).not.toContain("queueing");
  });

  it("the client self-check (SelfCheckResult shape) makes the client the suspect", () => {
    const selfCheck = {
      wallS: 10,
      cpuS: 9.6,
      cpuCoreFraction: 0.96,
      spinS: 0,
      eventLoopDelayMs: { mean: 5, p50: 2, p99: 42, max: 80 },
      clientBound: true,
      reasons: ["tokengate's event loop ran up to 42 ms late (p99 > 20 ms)"],
      limits: { eventLoopP99Ms: 20, cpuCoreFraction: 0.9 },
    };
    const t = makeTest({ concurrency: 64, ttftMs: 10, e2eMs: 100, gapMs: 1, extra: { selfCheck } });
    expect(readSelfCheck(t)).toEqual({
      clientBound: true,
      eventLoopDelayP99Ms: 42,
      cpuShare: 0.96,
      reason: "tokengate's event loop ran up to 42 ms late (p99 > 20 ms)",
    });
    const a = analyzeRun(run([t]));
    const c = a.bottlenecks.find((b) => b.kind === "client")!;
    expect(c.severity).toBe("high");
    expect(c.evidence).toEqual([
      "self-check: tokengate's event loop ran up to 42 ms late (p99 > 20 ms)",
      "client CPU 96% of one core",
    ]);
    expect(a.recommendations[0]?.knob).toBe("client");
  });

  it("a busy machine is a finding with its numbers, and the first thing to fix; a quiet one is not", () => {
    const machine = {
      cpus: 2,
      wallS: 10,
      ownShare: 0.3,
      otherShare: 0.7,
      stealShare: 0,
      otherShareMax: 0.75,
      loadavg1: [2.8, 3.1] as [number, number],
    };
    const busy = { ...makeTest({ ttftMs: 10, e2eMs: 100, gapMs: 1 }), machine };
    const a = analyzeRun(run([busy]));
    const b = a.bottlenecks.find((x) => x.kind === "busy-machine")!;
    expect(b.severity).toBe("high");
    expect(b.evidence).toEqual([
      "other work used 70% of the 2 CPUs' time (1.4 CPUs; max 75% over 1 s) while tokengate and its server used 30%",
      "load average 2.80 at the start, 3.10 at the end",
    ]);
    expect(a.recommendations[0]).toMatchObject({ knob: "machine", tests: ["t"] });
    const quiet = { ...busy, machine: { ...machine, otherShare: 0.05, otherShareMax: 0.1 } };
    expect(analyzeRun(run([quiet])).bottlenecks.some((x) => x.kind === "busy-machine")).toBe(false);
  });

  it("without a self-check, a client that sees slower decoding than the server reports is a medium suspect", () => {
    const a = analyzeBottlenecks(
      run([makeTest({ concurrency: 4, ttftMs: 10, e2eMs: 100, gapMs: 1, decodeRatio: 0.7 })]),
    );
    const c = a.bottlenecks.find((b) => b.kind === "client")!;
    expect(c.severity).toBe("medium");
    expect(c.evidence[0]).toMatch(/70% of the server's own \(median of 100 requests\)/);
    expect(readSelfCheck(makeTest({}))).toBeUndefined();
  });

  it("errors: classes in the evidence, advice per class", () => {
    const a = analyzeRun(
      run([makeTest({ requests: { attempted: 100, succeeded: 97, failed: 3, errors: { timeout: 2, http: 1 } } })]),
    );
    const err = a.bottlenecks.find((b) => b.kind === "errors")!;
    expect(err.severity).toBe("high");
    expect(err.evidence[0]).toBe("3 of 100 requests failed (3%): timeout 2, http 1");
    const rec = a.recommendations.find((r) => r.knob === "errors")!;
    expect(rec.action).toMatch(/timeouts/);
    expect(rec.action).toMatch(/HTTP errors/);
    expect(rec.action).not.toMatch(/connection errors/);
    // A single failure in 1000 is worth knowing but does not make the run untrustworthy.
    const rare = analyzeBottlenecks(
      run([makeTest({ requests: { attempted: 1000, succeeded: 999, failed: 1, errors: { stream: 1 } } })]),
    );
    expect(rare.bottlenecks.find((b) => b.kind === "errors")!.severity).toBe("medium");
  });

  it("shortfalls: raise the context (the slots share it) or ignore_eos", () => {
    const a = analyzeRun(run([makeTest({ concurrency: 4, requests: { shortfalls: 7 } })]));
    const s = a.bottlenecks.find((b) => b.kind === "shortfall")!;
    expect(s.evidence[0]).toMatch(/^7 of 100 successful requests produced fewer tokens than asked \(max_tokens 32\)/);
    expect(a.recommendations.find((r) => r.knob === "context-size")!.flags).toEqual(["-c", "8192"]);
  });

  it("underloaded: a multi-request load that leaves most slots idle", () => {
    const a = analyzeRun(
      run([
        makeTest({ concurrency: 2, ttftMs: 10, e2eMs: 100, gapMs: 1, server: server({ slots: 8, busyMean: 1.5 }) }),
      ]),
    );
    const u = a.bottlenecks.find((b) => b.kind === "underloaded")!;
    expect(u.severity).toBe("low");
    expect(u.evidence.join("\n")).toMatch(/mean 1.5 of 8 \(18.8%\)/);
    expect(a.recommendations.find((r) => r.knob === "load")!.action).toMatch(/at least the 8 slots/);
  });

  it("speculative decoding that rejects most drafts", () => {
    const a = analyzeRun(
      run([makeTest({ concurrency: 1, server: server({ busyMean: 1, draftTokens: 400, draftAccepted: 80 }) })]),
    );
    const s = a.bottlenecks.find((b) => b.kind === "speculative")!;
    expect(s.evidence[0]).toBe("80 of 400 draft tokens accepted (20%)");
    expect(a.recommendations.find((r) => r.knob === "speculative" && r.flags)?.flags).toEqual([
      "--spec-draft-n-max",
      "4",
    ]);
  });

  it("an aborted test is a high-severity finding", () => {
    const a = analyzeBottlenecks(run([makeTest({ aborted: "the llama-server server exited during the run" })]));
    expect(a.bottlenecks[0]).toMatchObject({ kind: "aborted", severity: "high" });
  });

  it("a max-load search that drifted is a high-severity finding with both figures, and says rerun on a quiet machine", () => {
    const drift = {
      load: 8,
      tolerance: 0.25,
      difference: 0.57,
      bracket: { maxPassing: 8, minFailing: 9 },
      first: {
        index: 3,
        load: 8,
        phase: "bisect",
        pass: true,
        ratio: 0.6,
        label: "concurrency_8",
        slo: "met: e2e p50 600 ms (≤ 1000 ms)",
      },
      repeat: {
        index: 6,
        load: 8,
        phase: "confirm",
        pass: false,
        ratio: 1.4,
        label: "concurrency_8_repeat1",
        slo: "missed: e2e p50 1400 ms (≤ 1000 ms)",
      },
      reason:
        "at load 8 the first probe (#4) met the SLO with worst ratio 0.60, its repeat (#7) missed it with 1.40: 57% apart, beyond the 25% drift tolerance",
    };
    const test = makeTest({ name: "ml", kind: "max-load", extra: { searches: [{ trial: 0, end: "drifted", drift }] } });
    const a = analyzeRun(run([test]));
    const b = a.bottlenecks.find((x) => x.kind === "drift");
    expect(b).toMatchObject({ test: "ml", severity: "high" });
    expect(b!.evidence).toEqual([
      `${drift.reason} (first: met: e2e p50 600 ms (≤ 1000 ms); repeat: missed: e2e p50 1400 ms (≤ 1000 ms)) [trial 1]`,
    ]);
    expect(a.recommendations.find((r) => r.knob === "machine")?.action).toMatch(/rerun where nothing else runs/);
    // The finding is valid in a results file (the schema knows the kind).
    const parsed = resultsSchema.parse({ ...run([test]), analysis: a }) as Results;
    expect(parsed.analysis?.bottlenecks.map((x) => x.kind)).toContain("drift");
    // A search that converged, and other kinds, give none.
    const converged = makeTest({
      kind: "max-load",
      extra: { searches: [{ trial: 0, end: "converged", maxPassing: 8 }] },
    });
    expect(analyzeBottlenecks(run([converged])).bottlenecks.some((x) => x.kind === "drift")).toBe(false);
  });

  it("every evidence line carries a number", () => {
    const results = run([
      makeTest({
        name: "a",
        concurrency: 8,
        ttftMs: 250,
        e2eMs: 600,
        gapMs: 230,
        server: server({ deferredShare: 0.5 }),
      }),
      makeTest({
        name: "b",
        kind: "latency",
        concurrency: 1,
        ttftMs: 300,
        e2eMs: 400,
        gapMs: 2,
        requests: { failed: 2, attempted: 100, succeeded: 98, errors: { http: 2 }, shortfalls: 3 },
      }),
    ]);
    const a = analyzeRun(results);
    expect(a.bottlenecks.length).toBeGreaterThan(3);
    for (const b of a.bottlenecks) for (const line of b.evidence) expect(line).toMatch(/\d/);
    for (const r of a.recommendations) {
      expect(r.evidence.length).toBeGreaterThan(0);
      expect(r.tests.length).toBeGreaterThan(0);
    }
    // Most severe first.
    const order = { high: 0, medium: 1, low: 2 };
    const sev = a.bottlenecks.map((b) => order[b.severity]);
    expect(sev).toEqual([...sev].sort((x, y) => x - y));
  });
});

describe("batching efficiency", () => {
  it("compares steps of one test when it has concurrency 1 and N", () => {
    const steps = [1, 8].map((c, i) => ({
      name: `concurrency_${c}`,
      params: { concurrency: c },
      metrics: { decode_tokens_per_s: metric([100, 40][i]!, "tok/s", "higher") },
      requests: { attempted: 5, succeeded: 5, failed: 0, errors: {}, shortfalls: 0 },
    }));
    const r = run([makeTest({ kind: "ramp", scenarios: steps })]);
    const facts = testFacts(r.tests[0]!, r);
    expect(facts.concurrency).toBe(8);
    const eff = batchingEfficiency(facts, [facts])!;
    expect(eff.ratio).toBeCloseTo(0.4, 9);
    expect(eff.line).toMatch(/40 tok\/s at concurrency 8 vs 100 tok\/s at concurrency 1/);
  });

  it("falls back to another test at concurrency 1, and leaves out an impossible speed-up", () => {
    const r = run([
      makeTest({
        name: "single",
        kind: "latency",
        concurrency: 1,
        server: server({ busyMean: 1, decodePerSlot: 100 }),
      }),
      makeTest({ name: "batched", concurrency: 4, server: server({ decodePerSlot: 70 }) }),
      makeTest({ name: "noisy", concurrency: 4, server: server({ decodePerSlot: 300 }) }),
    ]);
    const all = r.tests.map((t) => testFacts(t, r));
    expect(batchingEfficiency(all[1]!, all)?.ratio).toBeCloseTo(0.7, 9);
    expect(batchingEfficiency(all[2]!, all)).toBeUndefined();
  });
});

describe("helpers", () => {
  it("flagValue reads `-x v`, `--x=v`, aliases and the last repetition", () => {
    expect(flagValue(["-np", "4"], ["-np", "--parallel"])).toBe("4");
    expect(flagValue(["--parallel=6"], ["-np", "--parallel"])).toBe("6");
    expect(flagValue(["-np", "2", "--parallel", "8"], ["-np", "--parallel"])).toBe("8");
    expect(flagValue(["-t", "4"], ["-np", "--parallel"])).toBeUndefined();
  });
});

describe("on a real run (test/fixtures/results/quick.json: tiny model, llama-server --parallel 4)", () => {
  const results = resultsSchema.parse(
    JSON.parse(readFileSync(new URL("../fixtures/results/quick.json", import.meta.url), "utf8")),
  ) as Results;

  it("finds the slot queue of the throughput test (8 in flight on 4 slots) and recommends more slots", () => {
    const a = analyzeRun(results);
    const q = a.bottlenecks.find((b) => b.test === "throughput" && b.kind === "queueing");
    expect(q?.title).toBe("requests wait for a free slot");
    expect(a.recommendations.find((r) => r.knob === "parallel")?.flags?.slice(0, 2)).toEqual(["--parallel", "8"]);
    expect(a.timeSplits.map((s) => s.test)).toEqual(results.tests.map((t) => t.name));
  });

  it("the analysis round-trips through the results schema", () => {
    const withAnalysis = { ...results, analysis: analyzeRun(results) };
    const parsed = resultsSchema.parse(JSON.parse(JSON.stringify(withAnalysis)));
    expect(parsed.analysis).toEqual(withAnalysis.analysis);
  });
});
