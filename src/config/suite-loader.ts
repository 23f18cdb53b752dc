import { createHash } from "node:crypto";
import { readFileSync, type Stats, statSync } from "node:fs";
import { extname, join } from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { policyFromBlock, resolvePolicy } from "../analysis/policy.js";
import { TARGET_EXAMPLES } from "../analysis/targets.js";
import { BadInputError } from "../util/errors.js";
import { packageInfo } from "../util/package-root.js";
import { targetKindProblems, targetProblems } from "./suite-checks.js";
import { type Suite, suiteSchema } from "./suite-schema.js";

export interface LoadedSuite {
  suite: Suite;
  file: string;
  /** sha256 of the file's bytes: baselines match on it. */
  sha256: string;
}

export const EXAMPLE_SUITE = `name: quick
tests:
  - kind: latency
    promptTokens: [16, 128]
    repetitions: 5
  - kind: throughput
    concurrency: 4
    requests: 16
targets:
  - ttft_p95_ms < 200`;

export function defaultSuitePath(): string {
  return join(packageInfo().root, "examples", "suites", "quick.yml");
}

/** Larger suite files are refused before they are read: a suite is a page of YAML, not a data file. */
export const MAX_SUITE_BYTES = 1024 * 1024;
/**
 * Alias expansions allowed while the YAML becomes data (the `yaml` package's maxAliasCount, its default written out):
 * a few anchors reused (`slo: *strict`) are far below it; a "billion laughs" file that expands aliases of aliases
 * into gigabytes is stopped at it.
 */
export const MAX_YAML_ALIASES = 100;

const SUITE_HINT = "pass a suite file with --suite, e.g. --suite examples/suites/quick.yml";

/** The file's bytes, after checking it is a regular file of a suite's size (a folder, a device or a FIFO is not). */
function readSuiteBytes(file: string): Buffer {
  let st: Stats | undefined;
  try {
    st = statSync(file, { throwIfNoEntry: false });
  } catch (e) {
    throw new BadInputError(`cannot read the suite file (${(e as NodeJS.ErrnoException).code ?? e})`, {
      subject: file,
      hint: SUITE_HINT,
    });
  }
  if (!st) throw new BadInputError("suite file not found", { subject: file, hint: SUITE_HINT });
  if (st.isDirectory()) throw new BadInputError("is a folder, not a suite file", { subject: file, hint: SUITE_HINT });
  if (!st.isFile()) throw new BadInputError("is not a regular file", { subject: file, hint: SUITE_HINT });
  const tooBig = (size: number) =>
    new BadInputError(
      `is ${size.toLocaleString("en-US")} bytes; a suite file may be at most ${MAX_SUITE_BYTES / 2 ** 20} MiB (${MAX_SUITE_BYTES.toLocaleString("en-US")} bytes)`,
      { subject: file, hint: "a suite lists tests and targets; keep prompts and data out of it" },
    );
  if (st.size > MAX_SUITE_BYTES) throw tooBig(st.size);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new BadInputError(`cannot read the suite file (${(e as NodeJS.ErrnoException).code ?? e})`, {
      subject: file,
      hint: SUITE_HINT,
    });
  }
  // A file that grew since stat, or a /proc-like file that reports size 0.
  if (bytes.length > MAX_SUITE_BYTES) throw tooBig(bytes.length);
  return bytes;
}

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const line = first.linePos?.[0];
    // With prettyErrors the message's first line ends in its own " at line L, column C:" (the excerpt follows on the
    // next lines); the location is said once, here, so that part goes.
    const what = first.message.split("\n")[0]!.replace(/\s+at line \d+, column \d+:?\s*$/, "");
    throw new BadInputError(`not valid YAML${line ? ` at line ${line.line}, column ${line.col}` : ""}: ${what}`, {
      subject: file,
    });
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    // yaml throws a ReferenceError "Excessive alias count indicates a resource exhaustion attack".
    if (/alias/i.test((e as Error).message)) {
      throw new BadInputError(
        `its YAML aliases (*name) expand into more than ${MAX_YAML_ALIASES} copies; tokengate stops there (a file ` +
          "that expands aliases of aliases can grow to gigabytes)",
        { subject: file, hint: "write the repeated values out, or use each anchor only a few times" },
      );
    }
    throw new BadInputError(`not valid YAML: ${(e as Error).message}`, { subject: file });
  }
}

/** Reads, parses (YAML or JSON) and validates a suite file. Every problem names the file, the field and the value. */
export function loadSuite(file: string = defaultSuitePath()): LoadedSuite {
  const bytes = readSuiteBytes(file);
  const text = bytes.toString("utf8");
  let raw: unknown;
  if (extname(file).toLowerCase() === ".json") {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new BadInputError(`not valid JSON: ${(e as Error).message}`, { subject: file });
    }
  } else {
    raw = parseYaml(text, file);
  }
  return { suite: validateSuite(raw, file), file, sha256: createHash("sha256").update(bytes).digest("hex") };
}

export function validateSuite(raw: unknown, file: string): Suite {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new BadInputError("a suite must be a mapping with at least `tests:`", {
      subject: file,
      hint: `for example:\n${EXAMPLE_SUITE}`,
    });
  }
  const parsed = suiteSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((i) => describeIssue(i, raw));
    throw new BadInputError(`invalid suite:\n${lines.map((l) => `  - ${l}`).join("\n")}`, {
      subject: file,
      hint: `see schema/suite.schema.json; a valid suite looks like:\n${EXAMPLE_SUITE}`,
    });
  }
  const suite = parsed.data;
  // Rules across fields (warn <= fail, noiseFloor <= warn, error-rate warn <= fail) with the defaults filled in.
  try {
    resolvePolicy(policyFromBlock(suite.policy));
  } catch (e) {
    if (!(e instanceof BadInputError)) throw e;
    throw new BadInputError(`${e.subject ? `${e.subject}: ` : ""}${e.message}`, {
      subject: file,
      ...(e.hint ? { hint: e.hint } : {}),
    });
  }
  const seen = new Set<string>();
  suite.tests.forEach((t, i) => {
    const name = t.name ?? t.kind;
    if (seen.has(name)) {
      throw new BadInputError(`tests[${i}]: the name "${name}" is used twice`, {
        subject: file,
        hint: `give each test of the same kind a name, e.g. name: ${t.kind}-long`,
      });
    }
    seen.add(name);
  });
  // Targets and target options are read now, not after the first test ran (suite-checks.ts).
  const problems = [...targetProblems(suite), ...targetKindProblems(suite)];
  if (problems.length > 0) {
    throw new BadInputError(`invalid suite:\n${problems.map((l) => `  - ${l}`).join("\n")}`, {
      subject: file,
      hint: `targets look like ${TARGET_EXAMPLES.slice(0, 3)
        .map((e) => JSON.stringify(e))
        .join(", ")}; target options: schema/suite.schema.json`,
    });
  }
  return suite;
}

/** `tests[1].concurrency`-style path of a zod issue. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    "",
  );
}

function valueAt(raw: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = raw;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  const where = fieldPath(issue.path) || "(top level)";
  if (issue.code === "unrecognized_keys") {
    return `${where}: unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `\`${k}\``).join(", ")}`;
  }
  const value = valueAt(raw, issue.path);
  const shown = value === undefined ? "missing" : `got ${JSON.stringify(value)?.slice(0, 60)}`;
  if (issue.code === "invalid_union" && "discriminator" in issue) {
    return `${where}: unknown test kind (${shown}); use one of the kinds in schema/suite.schema.json, e.g. kind: latency`;
  }
  return `${where}: ${issue.message} (${shown})`;
}
