import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { policyFromBlock, resolvePolicy } from "../analysis/policy.js";
import { BadInputError } from "../util/errors.js";
import { packageInfo } from "../util/package-root.js";
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

/** Reads, parses (YAML or JSON) and validates a suite file. Every problem names the file, the field and the value. */
export function loadSuite(file: string = defaultSuitePath()): LoadedSuite {
  if (!existsSync(file)) {
    throw new BadInputError("suite file not found", {
      subject: file,
      hint: "pass an existing file with --suite, e.g. --suite examples/suites/quick.yml",
    });
  }
  const bytes = readFileSync(file);
  const text = bytes.toString("utf8");
  let raw: unknown;
  if (extname(file).toLowerCase() === ".json") {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new BadInputError(`not valid JSON: ${(e as Error).message}`, { subject: file });
    }
  } else {
    const doc = parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      const first = doc.errors[0]!;
      const line = first.linePos?.[0];
      throw new BadInputError(
        `not valid YAML${line ? ` at line ${line.line}, column ${line.col}` : ""}: ${first.message.split("\n")[0]}`,
        {
          subject: file,
        },
      );
    }
    raw = doc.toJS();
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
