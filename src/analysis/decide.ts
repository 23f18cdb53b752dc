import { existsSync, statSync } from "node:fs";
import type { Suite } from "../config/suite-schema.js";
import type { Results, Verdict } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import { type Baseline, findBaseline, type LoadedBaseline, loadBaseline, loadResults } from "./baseline.js";
import { type PolicyInput, policyFromBlock } from "./policy.js";
import type { TargetSpec } from "./targets.js";
import { applyConfirmation, judge } from "./verdict.js";

/**
 * The pipeline's one call into analysis: which baseline a run is compared with, and the verdict from targets and that
 * baseline. The statistics live in compare.ts / stats.ts / verdict.ts.
 */
export interface Comparison {
  /** What the report says the run was compared with. */
  label: string;
  /** A file given directly, or the baseline found in a folder for this run. */
  baseline?: Baseline & { file?: string };
  /** A folder of baselines in which nothing matched: said plainly, never compared. */
  note?: string;
}

/** `--baseline` before the run: a baseline file, a plain results file, or a folder of baselines. Read errors now. */
export async function prepareBaseline(path: string): Promise<{ path: string; file?: Baseline & { file?: string } }> {
  if (!existsSync(path)) {
    throw new BadInputError("baseline not found", {
      subject: path,
      hint: "pass a results.json, a baselines/NAME.json or a folder of baselines, e.g. --baseline baselines/",
    });
  }
  if (statSync(path).isDirectory()) return { path };
  return { path, file: await loadComparable(path) };
}

/** A baseline file, or a results file wrapped as one (`--baseline` accepts an earlier run's results.json). */
async function loadComparable(file: string): Promise<LoadedBaseline> {
  try {
    return await loadBaseline(file);
  } catch (e) {
    const results = await loadResults(file).catch(() => {
      throw e;
    });
    return { baselineVersion: 1, name: file, createdAt: results.finishedAt, source: {}, results, file };
  }
}

/** After the run: the comparison for this run (a folder is searched for the baseline matching its environment). */
export async function resolveComparison(
  prepared: { path: string; file?: Baseline & { file?: string } },
  run: Results,
): Promise<Comparison> {
  if (prepared.file) return { label: prepared.path, baseline: prepared.file };
  const found = await findBaseline(prepared.path, run);
  if (found.match) return { label: found.match.file ?? found.match.name, baseline: found.match };
  if (found.closest)
    return { label: found.closest.baseline.file ?? found.closest.baseline.name, baseline: found.closest.baseline };
  return {
    label: prepared.path,
    note: `no baseline for suite ${run.suite.name} in ${prepared.path} (${found.searched.length} files searched); propose one with \`tokengate baseline update\``,
  };
}

/** Suite-level and per-test targets, as the verdict module reads them. */
export function suiteTargets(suite: Suite): TargetSpec[] {
  const perTest = suite.tests.flatMap((t) =>
    t.targets.map((spec) =>
      typeof spec === "string"
        ? { expression: spec, test: t.name ?? t.kind }
        : { ...spec, test: spec.test ?? t.name ?? t.kind },
    ),
  );
  return [...suite.targets, ...perTest];
}

export function decideVerdict(results: Results, suite: Suite, comparison?: Comparison): Verdict {
  const verdict = judge({
    results,
    policy: policyFromBlock(suite.policy),
    targets: suiteTargets(suite),
    ...(comparison?.baseline ? { baseline: comparison.baseline } : {}),
  });
  if (comparison?.note) {
    verdict.checks.push({ test: "*", metric: "*", source: "baseline", verdict: "pass", reason: comparison.note });
  }
  return verdict;
}

/**
 * The confirmation rerun's verdict (docs/verdicts.md "Confirmation rerun"). `rerun` holds the rerun tests, measured
 * in a FRESH server process (the pipeline restarts the target first): run-to-run noise is a property of the process,
 * so a rerun in the same process shares the first run's condition and would confirm it. The baseline comparison then
 * judges the first run and the rerun together, as two candidate runs (their spread joins the between-run estimate),
 * and a fail stands only if those two runs together still show a significant regression, and the rerun by itself does
 * too (applyConfirmation): one overloaded run among the two must not carry a fail.
 */
export function confirmVerdict(
  first: Results,
  rerun: Results,
  comparison?: Comparison,
  policy: PolicyInput = {},
): Verdict {
  if (!comparison?.baseline || !first.verdict) return first.verdict;
  const rerunTests = new Set(rerun.tests.map((t) => t.name));
  // The first run restricted to the rerun tests, so both runs of the candidate hold the same tests. Only the baseline
  // checks of this verdict are read: targets and run health stay judged on the first run.
  const firstPart: Results = { ...first, tests: first.tests.filter((t) => rerunTests.has(t.name)) };
  const together = judge({ results: firstPart, moreRuns: [rerun], baseline: comparison.baseline, policy });
  const alone = judge({ results: rerun, baseline: comparison.baseline, policy });
  const confirmed = applyConfirmation(first.verdict, together, policy, { runs: 2, rerunAlone: alone });
  // What changed is the same for the rerun: it is the same configuration.
  return first.verdict.changes ? { ...confirmed, changes: first.verdict.changes } : confirmed;
}
