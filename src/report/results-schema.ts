import { z } from "zod";
import { RESULTS_SCHEMA_VERSION, type Results } from "../measure/results.js";

/**
 * results.json as a zod schema: validates results and baselines read back from disk (hand-edited, truncated or from
 * another version), and generates schema/results.schema.json. Kept in step with the interfaces in
 * src/measure/results.ts by the type assertion at the bottom: a field added there and not here fails to compile.
 * `null` is accepted where numbers are expected because JSON has no NaN (a metric with no samples is written as null).
 */
const num = z
  .number()
  .nullable()
  .transform((v) => (v === null ? Number.NaN : v));

const summary = z.object({
  count: z.number().int().min(0),
  mean: num,
  stddev: num,
  min: num,
  p50: num,
  p90: num,
  p95: num,
  p99: num,
  max: num,
});

const metric = z.object({
  unit: z.string(),
  better: z.enum(["lower", "higher"]),
  summary,
  histogram: z.string().optional(),
  trials: z.array(summary),
  aliases: z
    .object({ vllm: z.string().optional(), guidellm: z.string().optional(), aiperf: z.string().optional() })
    .optional(),
});

const requests = z.object({
  attempted: z.number().int().min(0),
  succeeded: z.number().int().min(0),
  failed: z.number().int().min(0),
  errors: z.partialRecord(
    z.enum(["connect", "http", "timeout", "stream", "parse", "cancelled", "shortfall"]),
    z.number().int(),
  ),
  shortfalls: z.number().int().min(0),
});

const test = z.object({
  name: z.string(),
  kind: z.string(),
  params: z.record(z.string(), z.unknown()),
  metrics: z.record(z.string(), metric),
  scenarios: z.array(
    z.object({
      name: z.string(),
      params: z.record(z.string(), z.unknown()),
      metrics: z.record(z.string(), metric),
      requests,
    }),
  ),
  requests,
  crossCheck: z
    .object({
      ttftMinusServerPromptMsP50: z.number().optional(),
      decodeRateRatioP50: z.number().optional(),
      samples: z.number().int(),
    })
    .optional(),
  windowS: num,
  trials: z.number().int().min(0),
  extra: z.record(z.string(), z.unknown()).optional(),
  aborted: z.string().optional(),
  machine: z
    .object({
      cpus: z.number().int().min(0),
      wallS: num,
      ownShare: z.number().min(0).max(1),
      otherShare: z.number().min(0).max(1),
      stealShare: z.number().min(0).max(1),
      otherShareMax: z.number().min(0).max(1),
      loadavg1: z.tuple([z.number(), z.number()]),
      serverUnknown: z.string().optional(),
    })
    .optional(),
  server: z
    .object({
      source: z.literal("llama-server"),
      windowS: num,
      counters: z.object({
        promptTokens: z.number(),
        promptSeconds: z.number(),
        cachedPromptTokens: z.number(),
        tokensPredicted: z.number(),
        predictedSeconds: z.number(),
        decodeCalls: z.number(),
        draftTokens: z.number().optional(),
        draftAccepted: z.number().optional(),
        drafts: z.number().optional(),
      }),
      rates: z.object({
        promptTokensPerS: z.number().optional(),
        decodeTokensPerSPerSlot: z.number().optional(),
        decodeTokensPerS: z.number().optional(),
        tokensPerDecodeCall: z.number().optional(),
        busySlotsPerDecode: z.number().optional(),
        promptTimeShare: z.number().optional(),
        draftAcceptance: z.number().optional(),
        promptCacheHitRatio: z.number().optional(),
      }),
      load: z
        .object({
          samples: z.number().int().min(0),
          intervalMs: z.number(),
          slots: z.number().int().optional(),
          busySlotsMean: z.number().optional(),
          busySlotsMax: z.number().optional(),
          occupancy: z.number().optional(),
          allBusyShare: z.number().optional(),
          processingMean: z.number().optional(),
          deferredMean: z.number().optional(),
          deferredMax: z.number().optional(),
          deferredShare: z.number().optional(),
          timeline: z.array(
            z.object({
              tMs: z.number(),
              busySlots: z.number().optional(),
              processing: z.number().optional(),
              deferred: z.number().optional(),
            }),
          ),
        })
        .optional(),
      scrapeErrors: z.number().int().min(0),
    })
    .optional(),
});

const analysis = z.object({
  timeSplits: z.array(
    z.object({
      test: z.string(),
      e2eMs: z.number(),
      queueMs: z.number().optional(),
      promptMs: z.number(),
      decodeMs: z.number(),
    }),
  ),
  bottlenecks: z.array(
    z.object({
      test: z.string(),
      kind: z.enum([
        "client",
        "queueing",
        "prefill",
        "decode",
        "underloaded",
        "errors",
        "shortfall",
        "speculative",
        "aborted",
        "busy-machine",
        "drift",
      ]),
      severity: z.enum(["high", "medium", "low"]),
      title: z.string(),
      evidence: z.array(z.string()),
    }),
  ),
  recommendations: z.array(
    z.object({
      knob: z.enum([
        "parallel",
        "batch-size",
        "kv-cache-type",
        "flash-attention",
        "quantization",
        "prompt-cache",
        "speculative",
        "threads",
        "gpu-offload",
        "context-size",
        "load",
        "client",
        "errors",
        "machine",
      ]),
      action: z.string(),
      flags: z.array(z.string()).optional(),
      why: z.string(),
      evidence: z.array(z.string()),
      tests: z.array(z.string()),
    }),
  ),
});

const verdictLevel = z.enum(["pass", "warn", "fail"]);

export const resultsSchema = z.object({
  schemaVersion: z.literal(RESULTS_SCHEMA_VERSION),
  tool: z.object({ name: z.literal("tokengate"), version: z.string() }),
  startedAt: z.string(),
  finishedAt: z.string(),
  status: z.enum(["complete", "interrupted", "aborted"]).optional(),
  statusReason: z.string().optional(),
  suite: z.object({ name: z.string(), file: z.string().optional(), sha256: z.string() }),
  environment: z.object({
    os: z.string(),
    arch: z.string(),
    cpuModel: z.string(),
    cpuCount: z.number().int(),
    memoryBytes: z.number(),
    node: z.string(),
    gpus: z.array(z.object({ name: z.string(), driver: z.string().optional(), memoryMiB: z.number().optional() })),
    gpuCount: z.number().int().min(0).optional(),
    gpuTopology: z
      .object({
        gpus: z.array(z.string()),
        links: z.array(z.array(z.string())),
        cpuAffinity: z.array(z.string()).optional(),
        numaAffinity: z.array(z.string()).optional(),
        summary: z.string(),
      })
      .optional(),
    cuda: z.string().optional(),
    target: z.object({
      kind: z.enum(["in-process", "llama-server", "external"]),
      build: z.string().optional(),
      serverFlags: z.array(z.string()),
      model: z
        .object({
          path: z.string().optional(),
          sha256: z.string().optional(),
          architecture: z.string().optional(),
          shape: z.record(z.string(), z.number()).optional(),
          quantization: z.string().optional(),
          sizeBytes: z.number().optional(),
          synthetic: z.boolean().optional(),
          vocab: z.string().optional(),
        })
        .optional(),
      details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    }),
  }),
  tests: z.array(test),
  verdict: z.object({
    overall: verdictLevel,
    reason: z.string(),
    changes: z
      .array(z.object({ field: z.string(), label: z.string(), baseline: z.string(), run: z.string() }))
      .optional()
      .describe("What the configuration under test changed against the baseline or the other arm"),
    checks: z.array(
      z.object({
        test: z.string(),
        metric: z.string(),
        source: z.enum(["target", "baseline", "run"]),
        verdict: verdictLevel,
        value: z.number().optional(),
        reference: z.number().optional(),
        reason: z.string(),
        comparison: z
          .object({
            change: z.number(),
            ciLow: z.number().optional(),
            ciHigh: z.number().optional(),
            ciLevel: z.number().optional(),
            pValue: z.number().optional(),
            pAdjusted: z.number().optional(),
            requestPValue: z.number().optional(),
            trials: z.object({ baseline: z.number().int(), candidate: z.number().int() }),
            inconclusive: z.boolean().optional(),
            moreTrials: z.number().optional(),
            confirmation: z.enum(["confirmed", "not-confirmed"]).optional(),
            detectable: z
              .number()
              .optional()
              .describe("Smallest change this comparison would have detected at the policy's power (fraction)"),
            pairs: z.number().int().optional().describe("Same-runner A/B: interleaved pairs of runs compared"),
          })
          .optional(),
      }),
    ),
  }),
  analysis: analysis.optional(),
  ab: z
    .object({
      pairs: z.number().int(),
      order: z.array(z.string()),
      arms: z.array(z.object({ name: z.string(), label: z.string(), runs: z.array(z.string()) })),
      stopped: z.string().optional(),
    })
    .optional()
    .describe("Same-runner A/B (tokengate ab): the arms, their run order and each run's results file"),
});

// Compile-time check that the schema and the interfaces agree: parsed output is a Results, and every key of the
// interfaces' optional parts is present in the schema (assignability alone would not catch a forgotten optional field).
type Parsed = z.output<typeof resultsSchema>;
type Check = Results["verdict"]["checks"][number];
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : false;
const _parsedIsResults: (r: Parsed) => Results = (r) => r;
const _checkKeys: SameKeys<Check, Parsed["verdict"]["checks"][number]> = true;
const _comparisonKeys: SameKeys<
  NonNullable<Check["comparison"]>,
  NonNullable<Parsed["verdict"]["checks"][number]["comparison"]>
> = true;
const _testKeys: SameKeys<Results["tests"][number], Parsed["tests"][number]> = true;
const _envKeys: SameKeys<Results["environment"], Parsed["environment"]> = true;
const _topologyKeys: SameKeys<
  NonNullable<Results["environment"]["gpuTopology"]>,
  NonNullable<Parsed["environment"]["gpuTopology"]>
> = true;
type Server = NonNullable<Results["tests"][number]["server"]>;
type ParsedServer = NonNullable<Parsed["tests"][number]["server"]>;
const _serverKeys: SameKeys<Server, ParsedServer> = true;
const _machineKeys: SameKeys<
  NonNullable<Results["tests"][number]["machine"]>,
  NonNullable<Parsed["tests"][number]["machine"]>
> = true;
const _serverCounterKeys: SameKeys<Server["counters"], ParsedServer["counters"]> = true;
const _serverRateKeys: SameKeys<Server["rates"], ParsedServer["rates"]> = true;
const _serverLoadKeys: SameKeys<NonNullable<Server["load"]>, NonNullable<ParsedServer["load"]>> = true;
const _sampleKeys: SameKeys<
  NonNullable<Server["load"]>["timeline"][number],
  NonNullable<ParsedServer["load"]>["timeline"][number]
> = true;
type Analysis = NonNullable<Results["analysis"]>;
type ParsedAnalysis = NonNullable<Parsed["analysis"]>;
const _resultsKeys: SameKeys<Results, Parsed> = true;
const _splitKeys: SameKeys<Analysis["timeSplits"][number], ParsedAnalysis["timeSplits"][number]> = true;
const _bottleneckKeys: SameKeys<Analysis["bottlenecks"][number], ParsedAnalysis["bottlenecks"][number]> = true;
const _recommendationKeys: SameKeys<Analysis["recommendations"][number], ParsedAnalysis["recommendations"][number]> =
  true;
void [_parsedIsResults, _checkKeys, _comparisonKeys, _testKeys, _envKeys, _topologyKeys];
void [_serverKeys, _machineKeys, _serverCounterKeys, _serverRateKeys, _serverLoadKeys, _sampleKeys];
void [_resultsKeys, _splitKeys, _bottleneckKeys, _recommendationKeys];
