import { z } from "zod";

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
    maxTokens: z.number().int().positive().default(32).describe("Output tokens per request (fixed output length)"),
    ignoreEos: z.boolean().default(true).describe("Generate exactly maxTokens (ignore_eos); shortfalls are reported"),
    temperature: z.number().min(0).default(0),
    seed: z.number().int().optional(),
    cachePrompt: z.boolean().default(false).describe("Let llama-server reuse its prompt cache (false: clean TTFT)"),
    stallTimeoutMs: z.number().int().positive().default(30_000).describe("A response that goes quiet this long fails"),
    requestTimeoutMs: z.number().int().positive().default(300_000),
    extraBody: z.record(z.string(), z.unknown()).optional().describe("Extra JSON fields merged into every request"),
  })
  .strict();

export const targetSchema = z
  .object({
    kind: z.enum(["in-process", "llama-server", "external"]).optional().describe("Default: in-process"),
    model: z.string().optional().describe("GGUF file; default: the embedded synthetic tiny model"),
    serverBin: z.string().optional().describe("llama-server binary; default: PATH, then the cached build"),
    url: z.string().optional().describe("external: base URL of an OpenAI-compatible server"),
    apiKeyEnv: z.string().default("TOKENGATE_API_KEY").describe("Environment variable holding the API key"),
    serverFlags: z.array(z.string()).default([]).describe('Extra llama-server flags, e.g. ["--parallel", "4"]'),
    threads: z.number().int().positive().optional().describe("CPU threads (default: all cores)"),
    sequences: z.number().int().positive().optional().describe("in-process: parallel sequences (default 4)"),
    readyTimeoutMs: z.number().int().positive().default(120_000),
  })
  .strict();

const common = {
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional()
    .describe("Unique test name (default: the kind)"),
  api: api.optional(),
  maxTokens: z.number().int().positive().optional(),
  trials: z.number().int().positive().optional().describe("Repeated trials of this test (default: suite trials)"),
  targets: z.array(targetExpr).default([]),
};

export const latencyTestSchema = z
  .object({
    kind: z.literal("latency"),
    ...common,
    promptTokens: z.array(z.number().int().positive()).min(1).default([16, 128, 512]),
    repetitions: z.number().int().positive().default(5).describe("Measured requests per prompt length"),
    warmup: z.number().int().min(0).default(2).describe("Unmeasured requests before measuring"),
  })
  .strict();

export const throughputTestSchema = z
  .object({
    kind: z.literal("throughput"),
    ...common,
    concurrency: z.number().int().positive().default(8).describe("Requests in flight at once"),
    requests: z.number().int().positive().default(32).describe("Measured requests"),
    promptTokens: z.number().int().positive().default(64),
    warmup: z.number().int().min(0).default(4).describe("Unmeasured requests first, sent at the same concurrency"),
  })
  .strict();

export const TEST_SCHEMAS = [latencyTestSchema, throughputTestSchema] as const;
export const testSchema = z.discriminatedUnion("kind", TEST_SCHEMAS);

export const suiteSchema = z
  .object({
    $schema: z.string().optional(),
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/)
      .default("suite")
      .describe("Suite name (baselines and PR comments key on it)"),
    description: z.string().optional(),
    target: targetSchema.default({ apiKeyEnv: "TOKENGATE_API_KEY", serverFlags: [], readyTimeoutMs: 120_000 }),
    request: requestSchema.default({
      api: "openai-chat",
      maxTokens: 32,
      ignoreEos: true,
      temperature: 0,
      cachePrompt: false,
      stallTimeoutMs: 30_000,
      requestTimeoutMs: 300_000,
    }),
    trials: z.number().int().positive().default(1).describe("Repeated trials per test (verdicts want 3 or more)"),
    seed: z.number().int().default(1).describe("Seed for prompts and schedules"),
    tests: z.array(testSchema).min(1),
    targets: z.array(targetExpr).default([]).describe("Targets checked on every test that has the metric"),
  })
  .strict();

export type Suite = z.infer<typeof suiteSchema>;
export type SuiteTest = z.infer<typeof testSchema>;
export type RequestDefaults = z.infer<typeof requestSchema>;
export type LatencyTest = z.infer<typeof latencyTestSchema>;
export type ThroughputTest = z.infer<typeof throughputTestSchema>;
