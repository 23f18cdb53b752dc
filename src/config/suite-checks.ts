/**
 * Suite rules that the schema cannot express, checked when the suite is loaded (before any server starts or request is
 * sent): target expressions that parse and name a metric tokengate measures, target `test:` names that exist, and
 * target options that apply to the target kind the file itself chose. Each returns problems as
 * `field.path: what is wrong` lines; the loader puts them under the file's name.
 */
import { parseTarget, resolveTargetMetric, type Target, type TargetSpec } from "../analysis/targets.js";
import { METRICS } from "../measure/metrics.js";
import type { MetricResult } from "../measure/results.js";
import type { TargetKind } from "../target/types.js";
import { isTokengateError } from "../util/errors.js";
import type { Suite, SuiteTest } from "./suite-schema.js";

/**
 * Every metric a test result can carry: src/measure/metrics.ts METRICS, plus `speedup` and `scaling_efficiency`, which
 * only the scaling kind computes (src/suite/scaling.ts).
 */
const ALL_METRICS: readonly string[] = [...Object.keys(METRICS), "speedup", "scaling_efficiency"];

/**
 * The metrics of the latency and throughput kinds: src/suite/assemble.ts computeMetrics over closed-loop requests, so
 * every per-request metric except the open-loop ones, and the three aggregates. The load kinds' sets depend on their
 * settings (goodput only with an SLO, max_sustainable_rps only for rate steps), so for them only ALL_METRICS is checked:
 * a target naming a metric the test will not have is then said after the run ("no test measured ...").
 */
const OPEN_LOOP_ONLY = new Set(["schedule_lag_ms", "ttft_corrected_ms", "e2e_corrected_ms"]);
const CLOSED_LOOP_METRICS: readonly string[] = Object.entries(METRICS)
  .filter(
    ([k, d]) =>
      (d.perRequest && !OPEN_LOOP_ONLY.has(k)) || ["output_tokens_per_s", "requests_per_s", "error_rate"].includes(k),
  )
  .map(([k]) => k);

function metricsOf(kind: SuiteTest["kind"] | undefined): readonly string[] {
  return kind === "latency" || kind === "throughput" ? CLOSED_LOOP_METRICS : ALL_METRICS;
}

/** Whether a target's metric (`ttft_ms`, or `ttft_s` read from ttft_ms) is among `names`. */
function resolves(target: Target, names: readonly string[]): boolean {
  const fake = Object.fromEntries(names.map((n) => [n, {} as MetricResult]));
  return resolveTargetMetric(target, fake) !== undefined;
}

/** A known metric close to an unknown one: the same name with `_ms` (`ttft` -> `ttft_ms`), else a prefix match. */
function suggest(metric: string): string | undefined {
  if (ALL_METRICS.includes(`${metric}_ms`)) return `${metric}_ms`;
  const head = metric.split("_")[0]!;
  return ALL_METRICS.find((m) => m.startsWith(`${head}_`));
}

export function targetProblems(suite: Suite): string[] {
  const problems: string[] = [];
  const names = new Set(suite.tests.map((t) => t.name ?? t.kind));
  const check = (spec: TargetSpec, field: string, owner: SuiteTest | undefined) => {
    let target: Target;
    try {
      target = parseTarget(spec, field);
    } catch (e) {
      if (!isTokengateError(e)) throw e;
      problems.push(`${field}: ${e.message}${e.hint ? ` (${e.hint})` : ""}`);
      return;
    }
    const about = target.test ?? owner?.name ?? owner?.kind;
    const test = about === undefined ? undefined : suite.tests.find((t) => (t.name ?? t.kind) === about);
    if (about !== undefined && !test) {
      problems.push(`${field}.test: no test is named "${about}" (tests: ${[...names].join(", ")})`);
      return;
    }
    if (!resolves(target, ALL_METRICS)) {
      const close = suggest(target.metric);
      problems.push(
        `${field}: tokengate measures no metric "${target.metric}" (in ${JSON.stringify(target.expression)})` +
          `${close ? `; did you mean ${close}?` : ""} Metrics: ${ALL_METRICS.join(", ")}`,
      );
      return;
    }
    if (test && !resolves(target, metricsOf(test.kind))) {
      problems.push(
        `${field}: a ${test.kind} test does not measure "${target.metric}" (it measures ${metricsOf(test.kind).join(", ")})`,
      );
    } else if (!test && !suite.tests.some((t) => resolves(target, metricsOf(t.kind)))) {
      const kinds = [...new Set(suite.tests.map((t) => t.kind))].join(", ");
      problems.push(`${field}: no test of this suite measures "${target.metric}" (its tests: ${kinds})`);
    }
  };
  for (const [i, spec] of suite.targets.entries()) check(spec, `targets[${i}]`, undefined);
  for (const [ti, t] of suite.tests.entries()) {
    for (const [i, spec] of t.targets.entries()) check(spec, `tests[${ti}].targets[${i}]`, t);
  }
  return problems;
}

/** Which target kinds each `target.` option applies to, and what to do instead elsewhere. */
export const TARGET_OPTION_KINDS: Record<string, { kinds: readonly TargetKind[]; instead: string }> = {
  model: { kinds: ["in-process", "llama-server"], instead: "the external server loads its own model" },
  serverBin: { kinds: ["llama-server"], instead: "only the llama-server target runs a server binary" },
  serverFlags: {
    kinds: ["llama-server"],
    instead: "only the llama-server target is started with flags; start an external server with them yourself",
  },
  threads: { kinds: ["in-process", "llama-server"], instead: "set the threads where the external server is started" },
  sequences: { kinds: ["in-process"], instead: "for llama-server use serverFlags: [--parallel, N]" },
  contextSize: { kinds: ["in-process"], instead: "for llama-server use serverFlags: [-c, N]" },
  batching: { kinds: ["in-process"], instead: "llama-server batches by itself (serverFlags --batch-size)" },
  responseCache: { kinds: ["in-process"], instead: "llama-server has its own prompt cache (request.cachePrompt)" },
  url: { kinds: ["external"], instead: "the other targets start their own server on a free port" },
  apiKeyEnv: { kinds: ["external"], instead: "the other targets start their own server, without a key" },
  waitForServerMs: { kinds: ["external"], instead: "the other targets wait for their own server (readyTimeoutMs)" },
};

/** The `target.` options set in the suite that do not apply to `kind`. */
export function inapplicableTargetOptions(target: Suite["target"], kind: TargetKind): string[] {
  return Object.entries(TARGET_OPTION_KINDS)
    .filter(([field, { kinds }]) => {
      const v = (target as Record<string, unknown>)[field];
      return v !== undefined && !(Array.isArray(v) && v.length === 0) && !kinds.includes(kind);
    })
    .map(([field]) => field);
}

/**
 * Options the file sets that its own `target.kind` does not use (a contradiction inside the file; silently ignored
 * before). Only with an explicit kind: a suite without one (examples/suites/stress.yml sets threads) is meant for
 * whatever target the command line picks, and planTarget says in one line what that target ignores.
 */
export function targetKindProblems(suite: Suite): string[] {
  const kind = suite.target.kind;
  if (kind === undefined) return [];
  return inapplicableTargetOptions(suite.target, kind).map(
    (field) =>
      `target.${field}: does not apply to target.kind: ${kind} (${TARGET_OPTION_KINDS[field]!.instead}); remove it`,
  );
}
