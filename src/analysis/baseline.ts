/**
 * Baselines are reviewed files in the repo: `baselines/<name>.json` = a results file plus where it came from. A run is
 * compared only with a baseline of the same suite and environment (the machine: CPU, GPU, driver, CUDA; fingerprint.ts);
 * another machine is said plainly ("not comparable: GPU differs (baseline H200, run A100)"), never compared. What the
 * run changed in the configuration under test (build, flags, model) is judged, and named first in the verdict.
 *
 * This module reads and writes files (loading, finding, proposing); everything else in src/analysis is pure.
 */
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import type { Results } from "../measure/results.js";
import { RESULTS_SCHEMA_VERSION } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import {
  configurationChanges,
  describeDifferences,
  environmentDifferences,
  type FingerprintDifference,
  setupDifferences,
} from "./fingerprint.js";
import { formatPercent } from "./format.js";
import { busyShare, DEFAULT_POLICY } from "./policy.js";

export const BASELINE_VERSION = 1;

export interface BaselineSource {
  /** Commit the baseline's results were measured at. */
  commit?: string;
  /** CI run (URL or id) that measured it. */
  run?: string;
  /** Branch or tag. */
  ref?: string;
  /** The results file it was promoted from (the first run's). */
  resultsFile?: string;
  /** Every run's results file, in order, when the baseline holds several runs. */
  resultsFiles?: string[];
}

export interface Baseline {
  baselineVersion: typeof BASELINE_VERSION;
  name: string;
  /** ISO 8601. */
  createdAt: string;
  source: BaselineSource;
  /** The first run (what a single-run baseline holds, and what readers that know one run read). */
  results: Results;
  /**
   * The other runs, each measured in its own server process, of the same suite and environment (checked when written).
   * Kept apart so the comparison knows which trial came from which run and can measure run-to-run noise
   * (docs/verdicts.md). Absent in single-run baselines, including every file written before runs existed.
   */
  moreRuns?: Results[];
}

/** Every run of a baseline, the first one first. */
export function baselineRuns(b: Pick<Baseline, "results" | "moreRuns">): Results[] {
  return [b.results, ...(b.moreRuns ?? [])];
}

/** A baseline with the file it was read from (for messages). */
export interface LoadedBaseline extends Baseline {
  file?: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas: strict on what analysis reads, loose (passthrough) on the rest, so the measuring side can add fields.

/** JSON has no NaN: summaries of empty metrics are written as null. Read them back as NaN. */
const num = z.union([z.number(), z.null()]).transform((v) => (v === null ? Number.NaN : v));

const summarySchema = z.looseObject({
  count: num,
  mean: num,
  stddev: num,
  min: num,
  p50: num,
  p90: num,
  p95: num,
  p99: num,
  max: num,
});

const metricSchema = z.looseObject({
  unit: z.string(),
  better: z.enum(["lower", "higher"]),
  summary: summarySchema,
  histogram: z.string().optional(),
  trials: z.array(summarySchema),
});

const testSchema = z.looseObject({
  name: z.string().min(1),
  kind: z.string(),
  params: z.record(z.string(), z.unknown()),
  metrics: z.record(z.string(), metricSchema),
  scenarios: z.array(z.unknown()).optional(),
  requests: z.looseObject({ attempted: z.number(), succeeded: z.number(), failed: z.number() }),
  trials: z.number(),
  aborted: z.string().optional(),
});

const environmentSchema = z.looseObject({
  os: z.string(),
  arch: z.string(),
  cpuModel: z.string(),
  cpuCount: z.number(),
  gpus: z.array(z.looseObject({ name: z.string(), driver: z.string().optional() })),
  cuda: z.string().optional(),
  target: z.looseObject({
    kind: z.string(),
    build: z.string().optional(),
    serverFlags: z.array(z.string()),
    model: z
      .looseObject({
        path: z.string().optional(),
        sha256: z.string().optional(),
        quantization: z.string().optional(),
        sizeBytes: z.number().optional(),
      })
      .optional(),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  }),
});

const resultsSchema = z.looseObject({
  schemaVersion: z.literal(RESULTS_SCHEMA_VERSION),
  tool: z.looseObject({ name: z.literal("tokengate"), version: z.string() }),
  suite: z.looseObject({ name: z.string(), file: z.string().optional(), sha256: z.string() }),
  environment: environmentSchema,
  tests: z.array(testSchema),
});

const baselineSchema = z.looseObject({
  baselineVersion: z.literal(BASELINE_VERSION),
  name: z.string().min(1),
  createdAt: z.string(),
  source: z.looseObject({
    commit: z.string().optional(),
    run: z.string().optional(),
    ref: z.string().optional(),
    resultsFile: z.string().optional(),
    resultsFiles: z.array(z.string()).optional(),
  }),
  results: resultsSchema,
  moreRuns: z.array(resultsSchema).optional(),
});

// ---------------------------------------------------------------------------------------------------------------
// Loading

const UPDATE_HINT = "regenerate it: tokengate baseline update --from results.json --to baselines/NAME.json";

/** Parses a baseline file's text; errors name the file and the field. */
export function parseBaseline(text: string, file: string): LoadedBaseline {
  const data = parseJson(text, file, UPDATE_HINT);
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new BadInputError("is not a baseline: expected a JSON object", { subject: file, hint: UPDATE_HINT });
  }
  const o = data as Record<string, unknown>;
  if (!("baselineVersion" in o)) {
    const looksLikeResults = "schemaVersion" in o && "tests" in o;
    throw new BadInputError(
      looksLikeResults
        ? "baselineVersion: missing; this is a results file, not a baseline"
        : "baselineVersion: missing",
      {
        subject: file,
        hint: looksLikeResults
          ? `promote it for review: tokengate baseline update --from ${file} --to baselines/NAME.json`
          : UPDATE_HINT,
      },
    );
  }
  checkVersion(o.baselineVersion, BASELINE_VERSION, "baselineVersion", file);
  const runs: Array<[string, unknown]> = [["results", o.results]];
  if (Array.isArray(o.moreRuns)) for (const [i, r] of o.moreRuns.entries()) runs.push([`moreRuns[${i}]`, r]);
  for (const [field, results] of runs) {
    if (typeof results === "object" && results !== null && "schemaVersion" in results) {
      checkVersion(
        (results as Record<string, unknown>).schemaVersion,
        RESULTS_SCHEMA_VERSION,
        `${field}.schemaVersion`,
        file,
      );
    }
  }
  const parsed = baselineSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) throw schemaError(parsed.error, file, "baseline", UPDATE_HINT);
  return { ...(parsed.data as unknown as Baseline), file };
}

/** Parses a results file's text (what `tokengate run` writes); errors name the file and the field. */
export function parseResults(text: string, file: string): Results {
  const hint = "use the results.json that tokengate run wrote, unedited";
  const data = parseJson(text, file, hint);
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new BadInputError("is not a results file: expected a JSON object", { subject: file, hint });
  }
  const o = data as Record<string, unknown>;
  if ("baselineVersion" in o && "results" in o) {
    // A baseline is a results file with metadata: accept it where results are asked for (`compare` takes either).
    return parseBaseline(text, file).results;
  }
  if (!("schemaVersion" in o)) throw new BadInputError("schemaVersion: missing", { subject: file, hint });
  checkVersion(o.schemaVersion, RESULTS_SCHEMA_VERSION, "schemaVersion", file);
  const parsed = resultsSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) throw schemaError(parsed.error, file, "results file", hint);
  return parsed.data as unknown as Results;
}

export async function loadBaseline(file: string): Promise<LoadedBaseline> {
  return parseBaseline(await readText(file, "baseline"), file);
}

export async function loadResults(file: string): Promise<Results> {
  return parseResults(await readText(file, "results file"), file);
}

/**
 * The runs in a file: every run of a baseline (a multi-run baseline has several), or the one run of a results file.
 * What `compare` and `validate` read, so a baseline's runs are never flattened into one.
 */
export async function loadRuns(file: string): Promise<Results[]> {
  const text = await readText(file, "results file");
  const data = parseJson(text, file, "use the results.json that tokengate run wrote, or a baselines/NAME.json");
  if (typeof data === "object" && data !== null && "baselineVersion" in data) {
    return baselineRuns(parseBaseline(text, file));
  }
  return [parseResults(text, file)];
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BadInputError(code === "ENOENT" ? `${what} not found` : `cannot read ${what} (${code ?? String(e)})`, {
      subject: file,
      hint:
        what === "baseline"
          ? "list baselines with ls baselines/; create one with tokengate baseline update"
          : undefined,
      cause: e,
    });
  }
}

function parseJson(text: string, file: string, hint: string): unknown {
  if (text.trim() === "") throw new BadInputError("is empty", { subject: file, hint });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`is not valid JSON (${(e as Error).message}); truncated or hand-edited?`, {
      subject: file,
      hint,
      cause: e,
    });
  }
}

function checkVersion(value: unknown, supported: number, field: string, file: string): void {
  if (value === supported) return;
  const newer = typeof value === "number" && value > supported;
  throw new BadInputError(
    `${field}: ${JSON.stringify(value)} is not supported (this tokengate reads version ${supported})`,
    {
      subject: file,
      hint: newer
        ? "it was written by a newer tokengate: upgrade tokengate, or regenerate the file with this version"
        : UPDATE_HINT,
    },
  );
}

/** `tests[1].metrics.ttft_ms.trials[0].p50`: JavaScript-style paths, as users find fields in an editor. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(String(p))) out += `${out ? "." : ""}${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(top level)";
}

function schemaError(error: z.ZodError, file: string, what: string, hint: string): BadInputError {
  const issues = error.issues.slice(0, 5).map((i) => {
    const input = "input" in i && i.input !== undefined ? ` (found ${truncate(JSON.stringify(i.input), 40)})` : "";
    const message =
      i.code === "invalid_type" && i.input === undefined ? "missing" : i.message.replace(/^Invalid input: /, "");
    return `${fieldPath(i.path)}: ${message}${input}`;
  });
  const more = error.issues.length > 5 ? `; and ${error.issues.length - 5} more` : "";
  return new BadInputError(`invalid ${what}: ${issues.join("; ")}${more}`, { subject: file, hint, cause: error });
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// ---------------------------------------------------------------------------------------------------------------
// Matching (the fingerprint split itself lives in fingerprint.ts)

/**
 * Differences that make a stored `baseline` not comparable with `run`: another suite, or another environment (the
 * machine). Configuration changes (build, flags, model) are what the comparison judges, never a reason to skip it.
 * Empty when comparable.
 */
export function baselineDifferences(baseline: Results, run: Results): FingerprintDifference[] {
  const out: FingerprintDifference[] = [];
  if (baseline.suite.name !== run.suite.name) {
    out.push({ field: "suite.name", label: "suite", baseline: baseline.suite.name, run: run.suite.name });
  }
  return [...out, ...environmentDifferences(baseline.environment, run.environment)];
}

// ---------------------------------------------------------------------------------------------------------------
// Finding and proposing baselines

export interface BaselineSearch {
  /** The baseline whose suite and environment match the run. */
  match?: LoadedBaseline;
  /** When none matches: the same-suite baseline with the fewest differences, and what differs. */
  closest?: { baseline: LoadedBaseline; differences: FingerprintDifference[] };
  /** Files read. */
  searched: string[];
}

/**
 * Looks through `dir` (e.g. `baselines/`) for the baseline of this run's suite and environment. A broken baseline file
 * is an error, not skipped: it is a reviewed file, and skipping it would quietly gate against nothing. A missing
 * directory means no baselines yet.
 */
export async function findBaseline(dir: string, run: Results): Promise<BaselineSearch> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".json")).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { searched: [] };
    throw new BadInputError(`cannot read the baselines directory (${(e as NodeJS.ErrnoException).code})`, {
      subject: dir,
      cause: e,
    });
  }
  const searched: string[] = [];
  const matches: LoadedBaseline[] = [];
  let closest: BaselineSearch["closest"];
  for (const n of names) {
    const file = join(dir, n);
    searched.push(file);
    const b = await loadBaseline(file);
    const diffs = baselineDifferences(b.results, run);
    if (diffs.length === 0) matches.push(b);
    else if (b.results.suite.name === run.suite.name && (!closest || diffs.length < closest.differences.length)) {
      closest = { baseline: b, differences: diffs };
    }
  }
  // Several baselines of one suite and environment (one per model, say): the one whose configuration is closest to
  // the run's is its baseline; two equally close ones are ambiguous and said so.
  const ranked = matches
    .map((b) => ({ b, changes: configurationChanges(b.results, run).length }))
    .sort((x, y) => x.changes - y.changes);
  if (ranked.length > 1 && ranked[0]!.changes === ranked[1]!.changes) {
    const tied = ranked.filter((r) => r.changes === ranked[0]!.changes).map((r) => r.b.file);
    throw new BadInputError(
      `${tied.length} baselines match this run's suite and environment equally well: ${tied.join(", ")}`,
      {
        subject: dir,
        hint: "keep one baseline per suite, environment and configuration; delete or rename the others in a reviewed PR",
      },
    );
  }
  const out: BaselineSearch = { searched };
  if (ranked[0]) out.match = ranked[0].b;
  else if (closest) out.closest = closest;
  return out;
}

export interface UpdateBaselineOptions {
  /**
   * Results file(s) to promote. Several files are several runs (each `tokengate run` in its own server process) of the
   * same suite and environment: the baseline keeps them apart, so comparisons measure run-to-run noise instead of
   * assuming it.
   */
  from: string | readonly string[];
  /** Baseline file to write (`baselines/NAME.json`). */
  to: string;
  /** Baseline name; the file name without `.json` when absent. */
  name?: string;
  /** Where the results came from (the Action fills commit, run, ref from GITHUB_*). */
  source?: BaselineSource;
  /** Creation time; now when absent. */
  now?: Date;
  /**
   * Promote a run that is not healthy (interrupted, aborted, or failed on errors: runHealthProblems) anyway, with a
   * warning per problem. Without it such a run is refused: a partial run would become the bar every PR is held to.
   */
  allowPartial?: boolean;
}

export interface UpdateBaselineResult {
  file: string;
  baseline: Baseline;
  /** True when `to` existed and was replaced (the PR diff shows what changed). */
  replaced: boolean;
  /** Things a reviewer should know before accepting it (aborted tests, single trials, a single run). */
  warnings: string[];
}

/**
 * Writes the proposed baseline for a reviewed PR. Never judges speed: a failing run can still be proposed (an accepted
 * regression), so gating never blocks producing it. Run health is another matter: an interrupted, aborted or erroring
 * run (runHealthProblems) is refused unless `allowPartial`, since its numbers describe part of a run. Written to a temp file and renamed, so a crash leaves no half file.
 * Several `from` files must be runs of one setup (suite, environment, tests): what differs is bad input naming it.
 */
export async function updateBaseline(options: UpdateBaselineOptions): Promise<UpdateBaselineResult> {
  const files = typeof options.from === "string" ? [options.from] : [...options.from];
  if (files.length === 0) {
    throw new BadInputError("no results file to promote", {
      subject: "--from",
      hint: "tokengate baseline update --from a/results.json --from b/results.json --to baselines/NAME.json",
    });
  }
  const runs: Results[] = [];
  const runFiles: string[] = [];
  for (const f of files) {
    for (const run of await loadRuns(f)) {
      runs.push(run);
      runFiles.push(f);
    }
  }
  const unhealthy = runs
    .map((run, i) => ({ file: runFiles[i]!, i, problems: runHealthProblems(run) }))
    .filter((u) => u.problems.length > 0);
  if (unhealthy.length > 0 && !options.allowPartial) {
    const which = (u: (typeof unhealthy)[number]) => (runs.length > 1 ? `run ${u.i + 1} (${u.file}): ` : "");
    throw new BadInputError(
      `refusing to make a baseline of an unhealthy run: ${unhealthy.map((u) => which(u) + u.problems.join("; ")).join("; ")}`,
      {
        subject: unhealthy[0]!.file,
        hint: "rerun the suite until it completes without errors and promote that run; to promote this one anyway (its numbers are partial), add --allow-partial",
      },
    );
  }
  const first = runs[0]!;
  for (const [i, run] of runs.entries()) {
    if (i === 0) continue;
    const why = runDifference(first, run);
    if (why) {
      throw new BadInputError(`runs of one baseline must be of the same suite and setup: ${why}`, {
        subject: files[Math.min(i, files.length - 1)]!,
        hint: `compare like with like: promote runs of one suite on one machine and model, e.g. --from ${files[0]} --from <another run of it>`,
      });
    }
  }
  const name = options.name ?? basename(options.to).replace(/\.json$/i, "");
  const warnings: string[] = [];
  for (const [i, results] of runs.entries()) {
    const which = runs.length > 1 ? ` in run ${i + 1}` : "";
    // Only reached with allowPartial when there are problems; aborted tests are warned about per test below.
    for (const p of runHealthProblems(results, { tests: false })) {
      warnings.push(`${runs.length > 1 ? `run ${i + 1}: ` : ""}${p}: promoted with --allow-partial`);
    }
    for (const t of results.tests) {
      if (t.aborted) warnings.push(`test ${t.name}${which} was aborted (${t.aborted}): its numbers are partial`);
      if (t.trials < DEFAULT_POLICY.minTrials)
        warnings.push(
          `test ${t.name}${which} ran ${t.trials} trial(s), fewer than the ${DEFAULT_POLICY.minTrials} a comparison needs: comparisons against it stay inconclusive`,
        );
      const busy = busyShare(t.machine);
      if (busy !== undefined)
        warnings.push(
          `test ${t.name}${which} ran while other work used ${formatPercent(busy)} of the machine's ${t.machine!.cpus} CPUs: the baseline is slower than the machine; rerun it on a quiet runner`,
        );
    }
  }
  if (runs.length === 1) {
    warnings.push(
      "one run: comparisons will assume the run-to-run noise (policy runNoise); add runs of separate processes with --from a.json --from b.json --from c.json to measure it",
    );
  }
  const source: BaselineSource = { resultsFile: basename(files[0]!), ...options.source };
  if (files.length > 1) source.resultsFiles = files.map((f) => basename(f));
  const baseline: Baseline = {
    baselineVersion: BASELINE_VERSION,
    name,
    createdAt: (options.now ?? new Date()).toISOString(),
    source,
    results: first,
  };
  if (runs.length > 1) baseline.moreRuns = runs.slice(1);
  let replaced = false;
  try {
    await readFile(options.to);
    replaced = true;
  } catch {
    replaced = false;
  }
  try {
    await mkdir(dirname(options.to), { recursive: true });
    const tmp = `${options.to}.tmp-${process.pid}`;
    await writeFile(tmp, `${JSON.stringify(baseline, null, 2)}\n`);
    await rename(tmp, options.to);
  } catch (e) {
    throw new BadInputError(`cannot write the baseline (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      subject: options.to,
      hint: "check the path is writable, e.g. --to baselines/cpu-smoke.json",
      cause: e,
    });
  }
  return { file: options.to, baseline, replaced, warnings };
}

/**
 * What makes a run unfit to be a baseline, one line each; empty for a healthy run. Run health only, never speed: a
 * slower run can be an accepted regression, but a partial one measures something else.
 * - the run's status is interrupted or aborted (`Results.status`; absent = complete);
 * - a test was aborted (`TestResult.aborted`; `tests: false` leaves these out);
 * - the run's verdict failed an error-rate check: the run-health check of analysis/verdict.ts (source `run`, metric
 *   `error_rate`) or an `error_rate` target of the suite. The verdict's `test aborted` checks (source `run`, metric
 *   `*`) are the aborted tests above.
 */
export function runHealthProblems(run: Results, opts: { tests?: boolean } = {}): string[] {
  const out: string[] = [];
  if (run.status === "interrupted" || run.status === "aborted") {
    out.push(`the run was ${run.status}${run.statusReason ? ` (${run.statusReason})` : ""}`);
  }
  if (opts.tests !== false) {
    for (const t of run.tests) if (t.aborted) out.push(`test ${t.name} was aborted (${t.aborted})`);
  }
  for (const c of run.verdict?.checks ?? []) {
    if (c.verdict !== "fail" || !/^error_rate(\.|$)/.test(c.metric)) continue;
    if (c.source !== "run" && c.source !== "target") continue;
    out.push(`test ${c.test} failed on errors (${c.reason})`);
  }
  return out;
}

/**
 * Why `run` cannot be another run of `first` in one baseline, or undefined: the suite (name and file hash), the
 * environment fingerprint, and each test's kind and parameters must agree.
 */
export function runDifference(first: Results, run: Results): string | undefined {
  const out: string[] = [];
  if (first.suite.name !== run.suite.name)
    out.push(`suite differs (first run ${first.suite.name}, this run ${run.suite.name})`);
  else if (first.suite.sha256 !== run.suite.sha256) {
    out.push(
      `suite file differs (first run sha256 ${first.suite.sha256.slice(0, 12)}, this run ${run.suite.sha256.slice(0, 12)})`,
    );
  }
  const env = setupDifferences(first.environment, run.environment);
  if (env.length) out.push(describeDifferences(env, { baseline: "first run", run: "this run" }));
  const names = (r: Results) => r.tests.map((t) => t.name).join(", ");
  if (names(first) !== names(run)) out.push(`tests differ (first run ${names(first)}; this run ${names(run)})`);
  else {
    for (const t of first.tests) {
      const u = run.tests.find((x) => x.name === t.name)!;
      const kind = t.kind !== u.kind ? `kind differs (first run ${t.kind}, this run ${u.kind})` : undefined;
      const params = kind ? undefined : paramsDifference(t.params, u.params);
      if (kind || params) out.push(`test ${t.name}: ${kind ?? params}`);
    }
  }
  return out.length ? out.join("; ") : undefined;
}

function paramsDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | undefined {
  const keys = [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].sort();
  const diffs = keys
    .filter((k) => JSON.stringify(a?.[k]) !== JSON.stringify(b?.[k]))
    .map((k) => `${k} first run ${JSON.stringify(a?.[k]) ?? "none"}, this run ${JSON.stringify(b?.[k]) ?? "none"}`);
  return diffs.length ? `params differ (${diffs.join("; ")})` : undefined;
}
