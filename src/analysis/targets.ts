/**
 * Absolute targets in the seed's style ("TTFT: 0.145s (target: <0.2s)"): `ttft_p95_ms < 200`, `requests_per_s > 100`,
 * `error_rate < 1%`. A target is read once (parseTarget) and evaluated against each test that measured its metric.
 */
import type { Check, MetricResult, TestResult } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import { checkLabel, formatPercent, formatValue, isStat, STATS, type Stat } from "./format.js";

export type TargetOp = "<" | "<=" | ">" | ">=";

export interface Target {
  /** As the user wrote it (reports show it). */
  expression: string;
  /** Key in TestResult.metrics as written: `ttft_ms`, `requests_per_s`. */
  metric: string;
  /** The statistic; `mean` when the expression names none (for per-request metrics: the mean over all requests). */
  stat: Stat;
  op: TargetOp;
  /** In the unit the expression names (the metric's own unit after evaluation-time conversion, see evaluateTarget). */
  threshold: number;
  /** Only judge this test; every test that measured the metric when absent. */
  test?: string;
  /** A value passing within this fraction of the threshold warns; the policy's targetWarnMargin when absent. */
  warnMargin?: number;
}

/** A target as a suite file or an input gives it: the expression, or the expression with options. */
export type TargetSpec = string | { expression: string; test?: string; warnMargin?: number };

export const TARGET_EXAMPLES = [
  "ttft_p95_ms < 200",
  "requests_per_s > 100",
  "e2e_p95_ms < 1000",
  "error_rate < 0.01",
  "decode_tokens_per_s_p50 > 50",
];

const HINT = `write <metric>[_<stat>][_<unit>] <op> <number>, e.g. ${TARGET_EXAMPLES.map((e) => `"${e}"`).join(", ")}; stats: ${STATS.join(", ")}; ops: < <= > >=`;

/** Time units a name or a number may carry, as a factor to milliseconds. */
const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

const EXPRESSION =
  /^([A-Za-z][A-Za-z0-9_.]*)\s*(<=|>=|<|>|≤|≥)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(ms|s|us|%)?$/i;

export function parseTarget(spec: TargetSpec, subject = "target"): Target {
  const { expression, test, warnMargin } = typeof spec === "string" ? { expression: spec } : spec;
  const text = String(expression ?? "").trim();
  const fail = (why: string): never => {
    throw new BadInputError(`cannot read target ${JSON.stringify(text)}: ${why}`, { subject, hint: HINT });
  };
  const m = EXPRESSION.exec(text);
  if (!m) {
    if (/==|!=|=/.test(text.replace(/<=|>=/g, ""))) fail("only <, <=, > and >= compare");
    if (!/(<|>|≤|≥)/.test(text)) fail("no comparison (<, <=, >, >=)");
    fail("expected a metric name, an operator and a number");
  }
  const [, name, rawOp, rawNumber, numberUnit] = m as unknown as [string, string, string, string, string | undefined];
  const op = ({ "≤": "<=", "≥": ">=" } as Record<string, TargetOp>)[rawOp] ?? (rawOp as TargetOp);
  let threshold = Number(rawNumber);
  if (!Number.isFinite(threshold)) fail(`${rawNumber} is not a number`);

  const tokens = name.toLowerCase().split(/[_.]/).filter(Boolean);
  // A stat is any token after the first that looks like one (`max_concurrency` keeps its leading `max`).
  const statAt = tokens.map((t, i) => (i > 0 && (isStat(t) || /^p\d+$/.test(t)) ? i : -1)).filter((i) => i >= 0);
  if (statAt.length > 1) fail(`more than one statistic (${statAt.map((i) => tokens[i]).join(", ")})`);
  let stat: Stat = "mean";
  if (statAt.length === 1) {
    const s = tokens[statAt[0]!]!;
    if (!isStat(s)) fail(`${s} is not a statistic tokengate records (${STATS.join(", ")})`);
    stat = s as Stat;
    tokens.splice(statAt[0]!, 1);
  }
  const last = tokens[tokens.length - 1];
  const nameTimeUnit =
    last !== undefined && last in TIME_UNITS && tokens[tokens.length - 2] !== "per" ? last : undefined;
  if (numberUnit === "%") {
    threshold /= 100;
  } else if (numberUnit) {
    const unit = numberUnit.toLowerCase();
    if (nameTimeUnit) threshold = (threshold * TIME_UNITS[unit]!) / TIME_UNITS[nameTimeUnit]!;
    else tokens.push(unit);
  }
  if (tokens.length === 0 || (tokens.length === 1 && tokens[0]! in TIME_UNITS)) fail("no metric name");
  const target: Target = { expression: text, metric: tokens.join("_"), stat, op, threshold };
  if (test !== undefined) target.test = test;
  if (warnMargin !== undefined) {
    if (!(warnMargin >= 0 && warnMargin < 1)) {
      throw new BadInputError(`warn margin must be a fraction in [0, 1), got ${warnMargin}`, {
        subject,
        hint: "e.g. 0.1: a value within 10% of the target warns",
      });
    }
    target.warnMargin = warnMargin;
  }
  return target;
}

export function parseTargets(specs: readonly TargetSpec[] = [], subject = "targets"): Target[] {
  return specs.map((s, i) => parseTarget(s, `${subject}[${i}]`));
}

/**
 * The test's metric a target reads, and the factor from the metric's unit to the target's: `ttft_s < 0.2` reads
 * `ttft_ms` with factor 0.001. Undefined when the test did not measure it.
 */
export function resolveTargetMetric(
  target: Target,
  metrics: Record<string, MetricResult>,
): { key: string; metric: MetricResult; toTargetUnit: number } | undefined {
  const own = metrics[target.metric];
  if (own) return { key: target.metric, metric: own, toTargetUnit: 1 };
  const m = /^(.*)_(us|ms|s)$/.exec(target.metric);
  if (!m || m[1]!.endsWith("_per")) return undefined;
  for (const [unit, toMs] of Object.entries(TIME_UNITS)) {
    const key = `${m[1]}_${unit}`;
    const metric = metrics[key];
    if (metric) return { key, metric, toTargetUnit: toMs / TIME_UNITS[m[2]!]! };
  }
  return undefined;
}

/**
 * Judges one test against one target: fail when the target is missed, warn when it is met within the warn margin,
 * pass otherwise. Undefined when the test did not measure the metric (or the target names another test).
 */
export function evaluateTarget(target: Target, test: TestResult, defaultWarnMargin: number): Check | undefined {
  if (target.test !== undefined && target.test !== test.name) return undefined;
  const found = resolveTargetMetric(target, test.metrics);
  if (!found) return undefined;
  const { key, metric, toTargetUnit } = found;
  const aggregate = metric.histogram === undefined;
  const label = checkLabel(key, target.stat, aggregate);
  const threshold = target.threshold / toTargetUnit;
  const targetText = `target ${target.op} ${formatValue(threshold, metric.unit)}`;
  const base = { test: test.name, metric: `${key}.${target.stat}`, source: "target" as const, reference: threshold };
  const value = metric.summary[target.stat];
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return { ...base, verdict: "warn", reason: `${label}: no value measured (${targetText})` };
  }
  const lower = target.op === "<" || target.op === "<=";
  const met =
    target.op === "<"
      ? value < threshold
      : target.op === "<="
        ? value <= threshold
        : target.op === ">"
          ? value > threshold
          : value >= threshold;
  const head = `${label} ${formatValue(value, metric.unit)} (${targetText})`;
  if (!met) {
    const miss = threshold === 0 ? undefined : Math.abs(value - threshold) / Math.abs(threshold);
    const by = miss === undefined ? "" : `: misses by ${formatPercent(miss)}`;
    return { ...base, verdict: "fail", value, reason: `${head}${by || ": missed"}` };
  }
  const margin = target.warnMargin ?? defaultWarnMargin;
  const near = lower ? value > threshold * (1 - margin) : value < threshold * (1 + margin);
  if (margin > 0 && near && threshold !== 0) {
    return { ...base, verdict: "warn", value, reason: `${head}: within ${formatPercent(margin)} of the target` };
  }
  return { ...base, verdict: "pass", value, reason: head };
}

/** All metric keys measured by any test, for "no test measured X" messages. */
export function measuredMetrics(tests: readonly TestResult[]): string[] {
  return [...new Set(tests.flatMap((t) => Object.keys(t.metrics)))].sort();
}
