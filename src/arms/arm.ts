/**
 * An arm is one configuration of the same workload: what a user varies between the base and the head of a pull
 * request (a server binary or a llama.cpp source to build, a model file, server flags, a suite file). Resolving an
 * arm loads its suite, applies its overrides and plans its target, so every mistake is found before any server
 * starts, and names the arm.
 */
import { realpathSync, statSync } from "node:fs";
import type { RunConfig } from "../config/run-config.js";
import { type LoadedSuite, loadSuite } from "../config/suite-loader.js";
import { planTarget, type TargetPlan } from "../target/index.js";
import { BadInputError, isTokengateError, type TokengateError } from "../util/errors.js";

export interface ArmSpec {
  /** `A` or `B` (the order of the interleaving). */
  name: string;
  /** What people call it: `base` / `head`, or the user's label. */
  label: string;
  /** The arm's suite file; default the run's. */
  suiteFile?: string;
  /** The arm's llama-server binary. */
  serverBin?: string;
  /** A llama.cpp source (git bundle, checkout or folder) that tokengate builds for this arm (cached per source). */
  serverSource?: string;
  /** The arm's model file. */
  modelPath?: string;
  /** Replaces the suite's `target.serverFlags` for this arm. */
  serverFlags?: string[];
}

export interface ResolvedArm {
  spec: ArmSpec;
  loaded: LoadedSuite;
  plan: TargetPlan;
  /** The run config this arm's runs use (outDir is set per run). */
  config: RunConfig;
}

/** The flag or option that set a field of an arm, for messages: `--base-server-bin` / `--server-bin`. */
function flagOf(arm: ArmSpec, what: string): string {
  return arm.name === "A" ? `--base-${what}` : `--${what}`;
}

/** Rethrows a tokengate error with the arm named, so "which side is broken" is never a guess. */
function inArm(arm: ArmSpec, e: unknown): never {
  if (isTokengateError(e)) {
    const err = e as TokengateError & { message: string };
    err.message = `arm ${arm.name} (${arm.label}): ${err.message}`;
  }
  throw e;
}

/** A file or a pipe (`--base-suite <(git show origin/main:perf/suite.yml)` is /dev/fd/63), never a directory. */
function mustBeFile(path: string, subject: string, example: string): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new BadInputError(`${path}: not found`, { subject, hint: example });
  }
  if (isDir) throw new BadInputError(`${path} is a directory, not a file`, { subject, hint: example });
}

/**
 * Loads and plans one arm. `build` turns a llama.cpp source into a binary (target/llama-build.ts buildLlamaServer),
 * passed in so resolving stays cheap to test.
 */
export async function resolveArm(
  spec: ArmSpec,
  base: RunConfig,
  build?: (source: string, arm: ArmSpec) => Promise<string>,
): Promise<ResolvedArm> {
  try {
    const suiteFile = spec.suiteFile ?? base.suiteFile;
    if (spec.suiteFile) mustBeFile(spec.suiteFile, flagOf(spec, "suite"), `${flagOf(spec, "suite")} perf/suite.yml`);
    const loaded = loadSuite(suiteFile);
    if (spec.serverFlags) {
      loaded.suite = { ...loaded.suite, target: { ...loaded.suite.target, serverFlags: [...spec.serverFlags] } };
    }
    if (spec.modelPath) mustBeFile(spec.modelPath, flagOf(spec, "model"), `${flagOf(spec, "model")} models/x.gguf`);
    let serverBin = spec.serverBin ?? base.serverBin;
    if (spec.serverBin) {
      mustBeFile(
        spec.serverBin,
        flagOf(spec, "server-bin"),
        `${flagOf(spec, "server-bin")} /opt/llama/bin/llama-server`,
      );
    }
    if (spec.serverSource) {
      if (!build)
        throw new BadInputError("cannot build a server source here", { subject: flagOf(spec, "server-source") });
      serverBin = await build(spec.serverSource, spec);
    }
    const config: RunConfig = {
      ...base,
      ...(suiteFile ? { suiteFile } : {}),
      ...(spec.modelPath ? { modelPath: spec.modelPath } : {}),
      ...(serverBin ? { serverBin } : {}),
    };
    const plan = await planTarget(loaded.suite, config);
    return { spec, loaded, plan, config };
  } catch (e) {
    inArm(spec, e);
  }
}

function real(p: string | undefined): string | undefined {
  if (!p) return undefined;
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** What makes two arms the same configuration: the suite as loaded (with overrides), the binary, the model, the target. */
export function armIdentity(arm: ResolvedArm): string {
  return JSON.stringify({
    suite: arm.loaded.sha256,
    target: arm.loaded.suite.target,
    kind: arm.plan.kind,
    model: real(arm.plan.model),
    serverBin: real(arm.config.serverBin),
    url: arm.config.url,
  });
}

/** Two identical arms measure nothing but noise: refused unless the user asked for exactly that (an A/A). */
export function checkArmsDiffer(a: ResolvedArm, b: ResolvedArm, allowIdentical: boolean): void {
  if (allowIdentical || armIdentity(a) !== armIdentity(b)) return;
  throw new BadInputError(
    "arms A (base) and B (head) are identical: same suite, server binary, model and flags, so the A/B can only measure noise",
    {
      subject: "tokengate ab",
      hint: 'vary one side, e.g. --base-server-bin old/llama-server, --base-model old.gguf, --base-suite <(git show origin/main:perf/suite.yml) or --base-server-flags="-t 1"; or pass --aa to measure the gate\'s own A/A noise on purpose',
    },
  );
}

/** A B B A A B ...: pair i is (A, B) when i is even and (B, A) when odd, so drift hits both arms alike. */
export function interleave(pairs: number): Array<"A" | "B"> {
  const out: Array<"A" | "B"> = [];
  for (let i = 0; i < pairs; i++) out.push(...(i % 2 === 0 ? (["A", "B"] as const) : (["B", "A"] as const)));
  return out;
}

/** `-t 1 --parallel 4` -> argv. Split on whitespace only (never a shell): a value with spaces needs a suite file. */
export function splitFlags(text: string, subject: string): string[] {
  if (/["'`\\$]/.test(text)) {
    throw new BadInputError(`quotes, backslashes and $ are not interpreted: ${JSON.stringify(text)}`, {
      subject,
      hint: 'flags are split on spaces only, e.g. --server-flags="-t 2 --parallel 4"; put a value with spaces in a suite file\'s target.serverFlags',
    });
  }
  return text.split(/\s+/).filter((s) => s !== "");
}
