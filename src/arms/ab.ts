/**
 * `tokengate ab` (and the Action's `mode: ab`): the same-runner A/B gate. Both arms are measured on this machine in
 * this job, interleaved (A B B A A B ...), each run in a freshly started server (engine.ts), and judged as pairs with
 * the gate's policy and verdict states (analysis/verdict.ts judgeAb). This is the honest gate on hosted and shared
 * runners, where a stored baseline measured on another machine, or at another hour, cannot be trusted.
 *
 * Output folder: results.json / report.md / report.html for the head arm's first run with the A/B verdict, and
 * runs/<arm>-<k>/ with every run's own results.json, records.ndjson and server log.
 */
import { mkdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { suiteTargets } from "../analysis/decide.js";
import { policyFromBlock } from "../analysis/policy.js";
import { judgeAb, markStopped } from "../analysis/verdict.js";
import { checkOutDir } from "../config/out-dir.js";
import type { RunConfig } from "../config/run-config.js";
import type { Results } from "../measure/results.js";
import { renderConsole } from "../report/console.js";
import { buildLlamaServer } from "../target/llama-build.js";
import type { Endpoint, Target } from "../target/types.js";
import { onInterrupt } from "../util/children.js";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { type ArmSpec, checkArmsDiffer, interleave, resolveArm } from "./arm.js";
import { runArms } from "./engine.js";
import { type JudgedOutcome, outputFiles, writeOutputs } from "./outputs.js";

/** Pairs a run makes unless told: three pairs give the paired test 2 degrees of freedom (docs/verdicts.md). */
export const DEFAULT_PAIRS = 3;
export const MAX_PAIRS = 50;

export interface AbConfig {
  /** Options both arms share (suite, target kind, trials, out dir, quiet). */
  base: RunConfig;
  /** Arm A, the base of the change (the reference). */
  a: Omit<ArmSpec, "name">;
  /** Arm B, the head (what is judged). */
  b: Omit<ArmSpec, "name">;
  pairs?: number;
  /** Two identical arms on purpose: measures the gate's own noise (an A/A). */
  allowIdentical?: boolean;
}

export type AbOutcome = JudgedOutcome;

export interface AbHooks {
  log?: (line: string) => void;
  onTargetStarted?: (target: Target, endpoint: Endpoint) => void;
  signal?: AbortSignal;
}

export async function runAb(config: AbConfig, hooks: AbHooks = {}): Promise<AbOutcome> {
  checkOutDir(config.base.outDir); // a bad --out is exit 2 before any arm is resolved or built
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const pairs = config.pairs ?? DEFAULT_PAIRS;
  if (!Number.isInteger(pairs) || pairs < 2 || pairs > MAX_PAIRS) {
    throw new BadInputError(`must be an integer from 2 to ${MAX_PAIRS}, got ${pairs}`, {
      subject: "--pairs",
      hint: "--pairs 3 (A B B A A B); a paired test needs at least 2 pairs",
    });
  }
  const build = async (source: string, arm: ArmSpec) => {
    log(`tokengate: building llama-server from ${source} for arm ${arm.name} (cached per source)`);
    try {
      return (await buildLlamaServer({ source, quiet: config.base.quiet ?? false })).serverBin;
    } catch (e) {
      if (e instanceof CouldNotRunError || e instanceof BadInputError) throw e;
      throw new CouldNotRunError(`the llama.cpp source did not build (${(e as Error).message})`, { subject: source });
    }
  };
  // Every arm is resolved (suite parsed, files checked, sources built) before any server starts.
  const a = await resolveArm({ ...config.a, name: "A" }, config.base, build);
  const b = await resolveArm({ ...config.b, name: "B" }, config.base, build);
  checkArmsDiffer(a, b, config.allowIdentical ?? false);

  const outDir = resolve(config.base.outDir);
  mkdirSync(outDir, { recursive: true });
  const files = outputFiles(outDir);
  const order = interleave(pairs);
  log(
    `tokengate: A/B of ${pairs} pairs (${order.join(" ")}), each run in a fresh server: A = ${a.spec.label}, B = ${b.spec.label}`,
  );
  // SIGINT/SIGTERM end the A/B cleanly: the run in flight stops, what was measured is judged and written.
  const interrupt = new AbortController();
  hooks.signal?.addEventListener("abort", () => interrupt.abort(hooks.signal?.reason), { once: true });
  const offInterrupt = onInterrupt((signal) => {
    log(`tokengate: ${signal}: stopping the A/B and writing what was measured`);
    interrupt.abort(`interrupted by ${signal}`);
  });
  const out = await runArms({
    arms: { A: a, B: b },
    order,
    outDir,
    log,
    signal: interrupt.signal,
    ...(hooks.onTargetStarted ? { onTargetStarted: hooks.onTargetStarted } : {}),
  }).finally(offInterrupt);
  const runsOf = (name: string) => out.runs.filter((r) => r.arm === name);
  const aRuns = runsOf("A");
  const bRuns = runsOf("B");
  const head = bRuns[0];
  if (!head || aRuns.length === 0) {
    throw new CouldNotRunError(`the A/B stopped before each arm had a run (${out.stopped ?? "no runs"})`, {
      subject: "tokengate ab",
      hint: `what was measured is in ${relative(process.cwd(), outDir) || "."}/runs/`,
    });
  }
  const results: Results = structuredClone(head.results);
  results.verdict = judgeAb({
    a: aRuns.map((r) => r.results),
    b: bRuns.map((r) => r.results),
    targets: suiteTargets(b.loaded.suite),
    policy: policyFromBlock(b.loaded.suite.policy),
  });
  results.ab = {
    pairs: Math.min(aRuns.length, bRuns.length),
    order: out.runs.map((r) => r.arm),
    arms: [a, b].map((arm) => ({
      name: arm.spec.name,
      label: arm.spec.label,
      runs: runsOf(arm.spec.name).map((r) => `${relative(outDir, r.dir)}/results.json`),
    })),
    ...(out.stopped ? { stopped: out.stopped } : {}),
  };
  if (out.stopped) markStopped(results, out.stopped, interrupt.signal.aborted);
  const reportMarkdown = await writeOutputs(results, undefined, outDir, files);
  // Every run's own results travel with the report (the Action uploads files.extra with the artifact).
  files.extra.push(...out.runs.map((r) => join(r.dir, "results.json")));
  log(renderConsole(results));
  return { results, outDir, files, reportMarkdown, exitCode: results.verdict.overall === "fail" ? 1 : 0 };
}
