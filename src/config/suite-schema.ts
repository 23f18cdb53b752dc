import { z } from "zod";
import { parseFraction } from "../analysis/policy.js";
import { amount, atMost, count, LIMITS } from "./limits.js";

/**
 * The suite file (YAML or JSON). Validated with zod (chosen because the same schema gives TypeScript types, precise
 * error paths for messages, and a JSON Schema for editors via z.toJSONSchema; see schema/suite.schema.json).
 *
 * Every field documents its default. Test kinds are a discriminated union on `kind`: add new kinds to TEST_SCHEMAS.
 */
const api = z
  .enum(["completion", "openai-completions", "openai-chat"])
  .describe("Request API: llama-server /completion, /v1/completions or /v1/chat/completions");
const targetExpr = z
  .union([
    z.string(),
    z
      .object({
        expression: z.string(),
        test: z.string().optional().describe("Only this test (default: every test that measured the metric)"),
        warnMargin: z.number().min(0).max(1).optional().describe("Warn when within this fraction of the threshold"),
      })
      .strict(),
  ])
  .describe("An absolute target like `ttft_p95_ms < 200`, `requests_per_s > 100`, `error_rate < 0.01`");

export const requestSchema = z
  .object({
    api: api.default("openai-chat").describe("Default API for requests (openai-chat works on every target)"),
    maxTokens: count("tokens").default(32).describe("Output tokens per request (fixed output length)"),
    ignoreEos: z.boolean().default(true).describe("Generate exactly maxTokens (ignore_eos); shortfalls are reported"),
    temperature: z.number().min(0).default(0),
    seed: z.number().int().optional(),
    cachePrompt: z.boolean().default(false).describe("Let llama-server reuse its prompt cache (false: clean TTFT)"),
    stallTimeoutMs: count("timeoutMs").default(30_000).describe("A response that goes quiet this long fails"),
    requestTimeoutMs: count("timeoutMs").default(300_000),
    extraBody: z.record(z.string(), z.unknown()).optional().describe("Extra JSON fields merged into every request"),
  })
  .strict();

export const targetSchema = z
  .object({
    kind: z.enum(["in-process", "llama-server", "external"]).optional().describe("Default: in-process"),
    model: z.string().optional().describe("GGUF file; default: the embedded synthetic tiny model"),
    serverBin: z.string().optional().describe("llama-server binary; default: PATH, then the cached build"),
    url: z.string().optional().describe("external: base URL of an OpenAI-compatible server"),
    apiKeyEnv: z
      .string()
      .optional()
      .describe("Environment variable holding the API key (default TOKENGATE_API_KEY; a named one must be set)"),
    serverFlags: z
      // llama-server stops at an empty argument ("error: invalid argument: ") and the run would fail at start.
      .array(z.string().min(1, { message: "a flag or value cannot be empty" }))
      .default([])
      .describe('Extra llama-server flags, e.g. ["--parallel", "4"]'),
    threads: count("threads").optional().describe("CPU threads (default: all cores)"),
    sequences: count("inFlight").optional().describe("in-process: parallel sequences (default 4)"),
    contextSize: count("tokens").optional().describe("in-process: context tokens per sequence (default 2048)"),
    batching: z
      .union([
        z.boolean(),
        z
          .object({ maxBatchSize: count("inFlight").optional(), maxWaitMs: amount("timeoutMs", true).optional() })
          .strict(),
      ])
      .optional()
      .describe("in-process: the seed's request batching (hold new prompts until maxBatchSize or maxWaitMs)"),
    responseCache: z
      .union([z.boolean(), z.object({ maxEntries: count("requests").optional() }).strict()])
      .optional()
      .describe("in-process: serve repeated temperature-0 requests from a response cache"),
    readyTimeoutMs: count("timeoutMs")
      .default(120_000)
      .describe("How long a target may take to become ready (a server answering 503 while loading is waited for)"),
    waitForServerMs: count("waitMs", true)
      .optional()
      .describe(
        "external: how long to keep retrying while nothing listens at the URL (connection refused), for a server that " +
          "is still starting (default 2500; --wait-for-server overrides)",
      ),
  })
  .strict();

const common = {
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional()
    .describe("Unique test name (default: the kind)"),
  api: api.optional(),
  maxTokens: count("tokens").optional(),
  trials: count("trials").optional().describe("Repeated trials of this test (default: suite trials)"),
  targets: z.array(targetExpr).default([]),
};

export const latencyTestSchema = z
  .object({
    kind: z.literal("latency"),
    ...common,
    promptTokens: z.array(count("tokens")).min(1).default([16, 128, 512]),
    repetitions: count("requests").default(5).describe("Measured requests per prompt length"),
    warmup: count("requests", true).default(2).describe("Unmeasured requests before measuring"),
  })
  .strict();

export const throughputTestSchema = z
  .object({
    kind: z.literal("throughput"),
    ...common,
    concurrency: count("inFlight").default(8).describe("Requests in flight at once"),
    requests: count("requests").default(32).describe("Measured requests"),
    promptTokens: count("tokens").default(64),
    warmup: count("requests", true).default(4).describe("Unmeasured requests first, sent at the same concurrency"),
  })
  .strict();

// ---------------------------------------------------------------------------------------------------------------
// Load tests (ramp, max-load, stress, open-loop): src/suite/{ramp,max-load,stress,open-loop}.ts

const name = z.string().regex(/^[A-Za-z0-9_.-]+$/);

export const sloSchema = z
  .object({
    ttftMs: z.number().positive().optional().describe("TTFT bound (ms) per request and for the step's percentile"),
    tpotMs: z.number().positive().optional().describe("TPOT bound (ms)"),
    e2eMs: z.number().positive().optional().describe("End-to-end latency bound (ms)"),
    percentile: z
      .number()
      .min(50)
      .max(100)
      .default(95)
      .describe("A step meets the SLO when this percentile is in bounds"),
    maxErrorRate: z.number().min(0).max(1).default(0.01).describe("Largest error rate a passing step may have"),
  })
  .strict()
  .describe(
    "Service level objective. A request is good (goodput) when it succeeded and met every latency bound; a load step " +
      "passes when its error rate and the chosen percentile of every bounded latency are within bounds. Open loops judge " +
      "latencies from the intended start (corrected for coordinated omission).",
  );

export const taskSchema = z
  .object({
    name: name.describe("Task name: the scenario in results"),
    weight: z.number().positive().default(1).describe("Relative weight, as locust's @task(weight)"),
    api: api.optional().describe("Default: the test's api. `completion` runs as openai-completions where unserved"),
    prompt: z
      .string()
      .optional()
      .describe("A fixed prompt (default: a synthetic prompt of promptTokens, new per request)"),
    promptTokens: count("tokens").optional(),
    maxTokens: count("tokens").optional(),
  })
  .strict();

const thinkTime = z
  .union([amount("seconds", true), z.tuple([amount("seconds", true), amount("seconds", true)])])
  .describe("Think time after each request, seconds: a constant, or [min, max] drawn uniformly (locust between)");

const loadCommon = {
  promptTokens: count("tokens").default(64).describe("Prompt length of synthetic prompts (approx. tokens)"),
  tasks: z.array(taskSchema).min(1).optional().describe("Weighted request mix (default: one task of the test's api)"),
  drainTimeoutS: amount("seconds")
    .default(30)
    .describe("At a graceful stop, in-flight requests get this long to finish, then are cancelled"),
  slo: sloSchema.optional(),
};

const arrivalFields = {
  arrivals: z
    .enum(["constant", "poisson", "gamma"])
    .default("poisson")
    .describe("Open loop inter-arrival times: constant, Poisson (exponential), or gamma (burstiness)"),
  burstiness: z.number().positive().optional().describe("gamma: shape k (vLLM's burstiness; < 1 burstier, 1 Poisson)"),
  cv: z.number().positive().optional().describe("gamma: coefficient of variation of the gaps (k = 1/cv^2)"),
  maxConcurrency: count("inFlight").optional().describe("Open loop: cap on requests in flight"),
  whenFull: z
    .enum(["queue", "drop"])
    .default("queue")
    .describe("Open loop at the cap: queue the arrival (it starts late: lag) or drop it (counted)"),
  lateMs: amount("timeoutMs")
    .default(10)
    .describe("Open loop: a request sent this much after its intended start is late"),
};

const stepFields = {
  variable: z
    .enum(["concurrency", "rate"])
    .default("concurrency")
    .describe("Closed-loop users, or open-loop arrivals/s"),
  stepDurationS: amount("seconds").default(10).describe("Measured seconds per step"),
  stepWarmupS: amount("seconds", true).default(2).describe("Unmeasured seconds at the step's load before measuring"),
  thinkTimeS: thinkTime.default(0),
};

/**
 * With `variable: concurrency` a load is a number of users, each holding a connection: the in-flight bound applies to
 * the loads too (a rate of 10 000 arrivals/s is fine; 10 000 users are not).
 */
function boundUserLoads(
  t: { variable: "concurrency" | "rate"; steps?: number[]; range?: { stop: number }; start?: number; max?: number },
  ctx: z.core.$RefinementCtx,
): void {
  if (t.variable !== "concurrency") return;
  const check = (value: number | undefined, path: PropertyKey[]) => {
    if (value !== undefined && value > LIMITS.inFlight.max) {
      ctx.addIssue({ code: "custom", path, input: value, message: `${atMost("inFlight")} (variable: concurrency)` });
    }
  };
  for (const [i, v] of (t.steps ?? []).entries()) check(v, ["steps", i]);
  check(t.range?.stop, ["range", "stop"]);
  check(t.start, ["start"]);
  check(t.max, ["max"]);
}

export const rampTestSchema = z
  .object({
    kind: z.literal("ramp"),
    ...common,
    ...loadCommon,
    ...stepFields,
    ...arrivalFields,
    steps: z.array(amount("rate")).min(1).optional().describe("Loads to step through (default [1, 2, 4, 8])"),
    range: z
      .object({ start: amount("rate"), stop: amount("rate"), step: amount("rate") })
      .strict()
      .optional()
      .describe("Instead of steps: start, start+step, ... up to stop (the seed's range(step, max + 1, step))"),
    stopOnSloBreach: z.boolean().default(true).describe("Stop after the first step that misses the SLO"),
    stopOnSaturation: z
      .boolean()
      .default(true)
      .describe("Stop when latency and in-flight rise but throughput does not"),
  })
  .strict()
  .superRefine(boundUserLoads);

export const maxLoadTestSchema = z
  .object({
    kind: z.literal("max-load"),
    ...common,
    ...loadCommon,
    ...stepFields,
    ...arrivalFields,
    slo: sloSchema.default({ e2eMs: 1000, percentile: 95, maxErrorRate: 0.01 }),
    start: amount("rate").default(1).describe("First load probed; doubled until a probe misses the SLO"),
    max: amount("rate").default(256).describe("Highest load probed"),
    tolerance: z
      .number()
      .positive()
      .max(1)
      .default(0.1)
      .describe("Bisect until the failing load is within this fraction of the passing one (concurrency: at least 1)"),
    confirm: z.boolean().default(true).describe("Repeat the boundary probe; a failed repeat moves the boundary down"),
    maxProbes: count("probes").default(16).describe("Bound on probes (time)"),
  })
  .strict()
  .superRefine(boundUserLoads);

export const stressTestSchema = z
  .object({
    kind: z.literal("stress"),
    ...common,
    ...loadCommon,
    users: count("inFlight").default(20).describe("Virtual users (locust -u)"),
    spawnRate: amount("rate").optional().describe("Users started per second (locust -r); default: all at once"),
    durationS: amount("seconds").default(60).describe("Measured seconds (locust -t)"),
    warmupS: amount("seconds", true)
      .default(0)
      .describe("Unmeasured seconds first (user ramp-up falls in it if shorter)"),
    iterations: count("requests").optional().describe("Requests per user (ends earlier than durationS)"),
    thinkTimeS: thinkTime.default([1, 3]),
    tasks: z
      .array(taskSchema)
      .min(1)
      .default([
        { name: "completion", weight: 1, api: "completion", prompt: "Hello world", maxTokens: 20 },
        { name: "chat", weight: 3, api: "openai-chat", prompt: "Hi", maxTokens: 20 },
      ])
      .describe("Weighted tasks (default: the seed's locustfile: completion x1, chat x3)"),
  })
  .strict();

export const openLoopTestSchema = z
  .object({
    kind: z.literal("open-loop"),
    ...common,
    ...loadCommon,
    ...arrivalFields,
    rate: amount("rate").default(4).describe("Mean arrivals per second"),
    durationS: amount("seconds").default(30).describe("Measured seconds of the schedule"),
    requests: count("requests").optional().describe("Measured arrivals (ends earlier than durationS)"),
    warmupS: amount("seconds", true).default(2).describe("Unmeasured seconds of the same schedule first"),
    warmupRequests: count("requests", true).optional().describe("Or: unmeasured arrivals first"),
    spinUs: amount("timeoutMs", true)
      .default(1000)
      .describe("The dispatcher spins (instead of sleeping on a ~1 ms timer) this close to an intended start"),
  })
  .strict();

// ---------------------------------------------------------------------------------------------------------------
// Multi-GPU scaling: src/suite/scaling.ts (planning in src/suite/scaling-plan.ts)

export const tensorSplitPresetSchema = z
  .enum(["main-light", "main-heavy"])
  .describe("main-light: GPU 0 gets half the share of each other GPU (1,2,2,..); main-heavy: twice (2,1,1,..)");

export const scalingTestSchema = z
  .object({
    kind: z.literal("scaling"),
    ...common,
    gpus: z
      .array(z.number().int().positive())
      .min(1)
      .default([1, 2, 4, 8])
      .describe(
        "GPU counts to measure, each on a subset chosen by topology (CUDA_VISIBLE_DEVICES); counts above the GPUs " +
          "present are skipped, and with no GPU one CPU point is measured",
      ),
    splitModes: z
      .array(z.enum(["layer", "row", "tensor"]))
      .min(1)
      .default(["layer", "row"])
      .describe("llama-server -sm modes for subsets of 2+ GPUs (tensor: llama.cpp's experimental tensor parallelism)"),
    tensorSplits: z
      .array(z.union([tensorSplitPresetSchema, z.array(z.number().positive()).min(2)]))
      .default(["main-light"])
      .describe(
        "Uneven -ts ratios, each measured with every split mode: a preset, or explicit ratios (e.g. [3, 1]) used " +
          "for subsets of that many GPUs; [] for even splits only",
      ),
    throughput: z
      .object({
        concurrency: count("inFlight").default(8).describe("Requests in flight at once"),
        requests: count("requests").default(32).describe("Measured requests per configuration"),
        promptTokens: count("tokens").default(128),
        warmup: count("requests", true).default(4).describe("Unmeasured requests first, at the same concurrency"),
      })
      .strict()
      .default({ concurrency: 8, requests: 32, promptTokens: 128, warmup: 4 })
      .describe("The throughput phase run on every configuration"),
    latency: z
      .object({
        promptTokens: count("tokens").default(128),
        repetitions: count("requests", true).default(5).describe("Measured single requests (0: no latency phase)"),
        warmup: count("requests", true).default(1),
      })
      .strict()
      .default({ promptTokens: 128, repetitions: 5, warmup: 1 })
      .describe("The latency phase (one request in flight) run on every configuration"),
  })
  .strict()
  .describe(
    "Runs the same workload on llama-server restarted per configuration (GPU subset x split mode) and reports " +
      "throughput, latency and scaling efficiency (speedup over the smallest configuration / GPUs). Needs target.kind: llama-server",
  );

export const TEST_SCHEMAS = [
  latencyTestSchema,
  throughputTestSchema,
  rampTestSchema,
  maxLoadTestSchema,
  stressTestSchema,
  openLoopTestSchema,
  scalingTestSchema,
] as const;
export const testSchema = z.discriminatedUnion("kind", TEST_SCHEMAS);

/** A fraction as a number (0.10) or a percent string ("10%"). */
const fraction = (max: number, what: string) =>
  z
    .union([z.number(), z.string()])
    // The same reading as the CLI flags' (policy.ts parseFraction): "10%" or "0.10"; a bare "10" is refused.
    .transform((v, ctx) => {
      if (typeof v === "number") return v;
      try {
        return parseFraction(v, "");
      } catch (e) {
        ctx.addIssue({ code: "custom", message: `${(e as Error).message}; write "10%" or 0.10` });
        return z.NEVER;
      }
    })
    .pipe(z.number().min(0).max(max))
    .describe(`${what} (a fraction, 0.10 = 10%, or a percent string "10%")`);

/**
 * How a run is judged against its baseline (src/analysis/policy.ts, docs/verdicts.md "Defaults"). Every field is
 * optional: what is left out keeps its default. Cross-field rules (warn <= fail, noiseFloor <= warn) are checked
 * when the suite is loaded.
 */
export const policySchema = z
  .object({
    warn: fraction(10, "A significant regression at or above this warns (default 5%)").optional(),
    fail: fraction(10, "A significant regression at or above this fails (default 10%)").optional(),
    noiseFloor: fraction(1, "Smaller changes pass without a test (default 2%)").optional(),
    alpha: z.number().gt(0).lt(0.5).optional().describe("Family-wise false-alarm rate after Holm (default 0.05)"),
    power: z
      .number()
      .gt(0.5)
      .lt(1)
      .optional()
      .describe("Power at which a verdict states the smallest change it would have detected (default 0.95)"),
    minTrials: z
      .number()
      .int()
      .min(2)
      .max(LIMITS.trials.max, atMost("trials"))
      .optional()
      .describe("Fewer trials a side is inconclusive (default 5)"),
    runNoise: fraction(2, "Assumed run-to-run noise (default 3% with a GPU, 30% without)").optional(),
    runNoiseDf: z.number().min(0).max(1000).optional().describe("Degrees of freedom runNoise counts as (default 4)"),
    busyMachine: fraction(
      1,
      "Never fail a run while other work used more of the CPUs than this (default 25%)",
    ).optional(),
    confirmFails: z
      .boolean()
      .optional()
      .describe("Rerun in a fresh server process before a baseline fail (default true)"),
    holmFamily: z.enum(["test", "run"]).optional().describe("Holm across each test's metrics or the whole run"),
    stallWindowS: z
      .number()
      .min(1)
      .max(3600)
      .optional()
      .describe(
        "End the run as 'server stalled' after this many seconds without a byte while requests wait (default 20)",
      ),
    inconclusive: z
      .enum(["warn", "pass"])
      .optional()
      .describe(
        "A regression-sized change that is not significant: pass (default; the reason says inconclusive and what the gate could have caught) or warn",
      ),
    errorRate: z
      .object({
        warn: fraction(1, "Error rate above this warns (default 0)").optional(),
        fail: fraction(1, "Error rate at or above this fails (default 1%)").optional(),
      })
      .strict()
      .optional(),
    gate: z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9_]+\.(p50|p90|p95|p99|mean|max|min)$/,
            "metric.stat, e.g. ttft_ms.p95 or output_tokens_per_s.mean",
          ),
      )
      .min(1)
      .optional()
      .describe(
        "Gated metrics as metric.stat (default: ttft/e2e p50 and p95, tpot p50, decode, output and request rates)",
      ),
  })
  .strict();

export const suiteSchema = z
  .object({
    $schema: z.string().optional(),
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/)
      .default("suite")
      .describe("Suite name (baselines and PR comments key on it)"),
    description: z.string().optional(),
    target: targetSchema.default({ serverFlags: [], readyTimeoutMs: 120_000 }),
    request: requestSchema.default({
      api: "openai-chat",
      maxTokens: 32,
      ignoreEos: true,
      temperature: 0,
      cachePrompt: false,
      stallTimeoutMs: 30_000,
      requestTimeoutMs: 300_000,
    }),
    trials: count("trials")
      .optional()
      .describe(
        "Repeated trials per test (default: 5 for latency and throughput, the kinds a baseline gates, which is policy.minTrials; 1 for the time-bound load and scaling kinds)",
      ),
    seed: z.number().int().default(1).describe("Seed for prompts and schedules"),
    tests: z.array(testSchema).min(1),
    targets: z.array(targetExpr).default([]).describe("Targets checked on every test that has the metric"),
    policy: policySchema.optional().describe("How the baseline comparison judges (thresholds, noise, guard)"),
  })
  .strict();

export type Suite = z.infer<typeof suiteSchema>;
export type SuitePolicy = z.infer<typeof policySchema>;
export type SuiteTest = z.infer<typeof testSchema>;
export type RequestDefaults = z.infer<typeof requestSchema>;
export type LatencyTest = z.infer<typeof latencyTestSchema>;
export type ThroughputTest = z.infer<typeof throughputTestSchema>;
export type Slo = z.infer<typeof sloSchema>;
export type TaskSpec = z.infer<typeof taskSchema>;
export type RampTest = z.infer<typeof rampTestSchema>;
export type MaxLoadTest = z.infer<typeof maxLoadTestSchema>;
export type StressTest = z.infer<typeof stressTestSchema>;
export type OpenLoopTest = z.infer<typeof openLoopTestSchema>;
export type ScalingTest = z.infer<typeof scalingTestSchema>;
export type TensorSplitPreset = z.infer<typeof tensorSplitPresetSchema>;
