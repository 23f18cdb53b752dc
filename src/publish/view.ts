/**
 * The part of a results file that the publish layer shows (PR comment, job summary, annotations), as a zod schema.
 *
 * Every results file goes through `toPublishView()` before it is rendered, whether this step just produced it or it was
 * downloaded from an artifact of a fork's run (`mode: report`). For the latter the file is untrusted: the fork's
 * workflow decided what went into the artifact. The schema therefore caps every string, array and map, so a hostile
 * file cannot make us render a 2 GB comment or loop over a million checks; escaping happens later, at render time.
 * Unknown fields are dropped: only what is listed here can reach a comment.
 */
import { z } from "zod";
import type { Results } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";

/** Limits for untrusted results files (generous for real suites; a real suite has tens of checks, not thousands). */
export const VIEW_LIMITS = {
  string: 2_000,
  checks: 2_000,
  tests: 200,
  metricsPerTest: 200,
  scenariosPerTest: 200,
  gpus: 64,
  changes: 200,
} as const;

const str = z.string().max(VIEW_LIMITS.string);
const level = z.enum(["pass", "warn", "fail"]);
const num = z.number();

const summarySchema = z.object({
  count: num,
  mean: num,
  stddev: num.optional(),
  min: num.optional(),
  p50: num,
  p90: num.optional(),
  p95: num,
  p99: num,
  max: num,
});

const metricSchema = z.object({
  unit: str,
  better: z.enum(["lower", "higher"]),
  summary: summarySchema,
});

function cappedRecord<T extends z.ZodType>(value: T, max: number) {
  return z.record(str, value).refine((r) => Object.keys(r).length <= max, { message: `more than ${max} entries` });
}

const requestsSchema = z.object({
  attempted: num,
  succeeded: num,
  failed: num,
});

const testSchema = z.object({
  name: str,
  kind: str,
  metrics: cappedRecord(metricSchema, VIEW_LIMITS.metricsPerTest),
  requests: requestsSchema,
  trials: num.optional(),
  aborted: str.optional(),
});

const checkSchema = z.object({
  test: str,
  metric: str,
  source: z.enum(["target", "baseline", "run"]),
  verdict: level,
  value: num.optional(),
  reference: num.optional(),
  reason: str,
});

export const publishViewSchema = z.object({
  schemaVersion: z.literal(1),
  tool: z.object({ name: z.literal("tokengate"), version: str }),
  startedAt: str,
  finishedAt: str,
  suite: z.object({ name: str, file: str.optional(), sha256: str }),
  environment: z.object({
    os: str,
    arch: str,
    cpuModel: str,
    cpuCount: num,
    gpus: z.array(z.object({ name: str, driver: str.optional(), memoryMiB: num.optional() })).max(VIEW_LIMITS.gpus),
    cuda: str.optional(),
    target: z.object({
      kind: str,
      build: str.optional(),
      model: z
        .object({
          path: str.optional(),
          quantization: str.optional(),
          architecture: str.optional(),
          synthetic: z.boolean().optional(),
        })
        .optional(),
    }),
  }),
  tests: z.array(testSchema).max(VIEW_LIMITS.tests),
  verdict: z.object({
    overall: level,
    reason: str,
    changes: z
      .array(z.object({ field: str, label: str, baseline: str, run: str }))
      .max(VIEW_LIMITS.changes)
      .optional(),
    checks: z.array(checkSchema).max(VIEW_LIMITS.checks),
  }),
});

export type PublishView = z.infer<typeof publishViewSchema>;
export type PublishCheck = PublishView["verdict"]["checks"][number];
export type PublishTest = PublishView["tests"][number];

/** Compile-time proof that every Results file is a valid view input (the schema only narrows, never invents). */
const _resultsFitTheView = (r: Results): z.input<typeof publishViewSchema> => r;
void _resultsFitTheView;

/**
 * Validates a parsed results file (trusted or not) and returns the capped view. `source` names the file in errors.
 * Throws BadInputError listing at most five problems.
 */
export function toPublishView(raw: unknown, source: string): PublishView {
  const parsed = publishViewSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
  throw new BadInputError(`is not a tokengate results file this version can show (${problems})`, {
    subject: source,
    hint: "produce it with the same major version of tokengate (the `mode: run` step and the `mode: report` step should use the same action ref)",
  });
}
