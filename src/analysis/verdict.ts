/**
 * One verdict per run: absolute targets, the run's own health (aborted tests, error rate) and the baseline comparison,
 * each a Check with a one-line reason; overall = the worst check. Pure: data in, data out.
 */
import type { Check, Results, TestResult, Verdict, VerdictLevel } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import { type Baseline, baselineDifferences, baselineRuns } from "./baseline.js";
import { asRuns, type CompareOptions, compareTests, type Runs } from "./compare.js";
import { configurationChanges, describeDifferences } from "./fingerprint.js";
import { formatChange, formatPercent, formatValue } from "./format.js";
import { type Policy, type PolicyInput, resolvePolicy } from "./policy.js";
import { evaluateTarget, measuredMetrics, parseTarget, type Target, type TargetSpec } from "./targets.js";

export interface JudgeInput {
  results: Results;
  /** The matching baseline (findBaseline); its environment is checked again here, never compared blindly. */
  baseline?: Baseline & { file?: string };
  /**
   * More runs of the candidate, each a separate server process of the same setup (the confirmation rerun): they join
   * `results` in the baseline comparison as runs, never as more trials of it. Targets and run health read `results`.
   */
  moreRuns?: readonly Results[];
  /** Absolute targets: expressions (`ttft_p95_ms < 200`) or parsed targets. */
  targets?: ReadonlyArray<TargetSpec | Target>;
  policy?: Policy | PolicyInput;
  options?: CompareOptions;
}

const RANK: Record<VerdictLevel, number> = { pass: 0, warn: 1, fail: 2 };

export function judge(input: JudgeInput): Verdict {
  const policy = resolvePolicy(input.policy as PolicyInput);
  const { results } = input;
  const targets = (input.targets ?? []).map((t, i) =>
    typeof t === "object" && "metric" in t ? t : parseTarget(t, `targets[${i}]`),
  );
  const checks: Check[] = [];

  for (const test of results.tests) checks.push(...runChecks(test, policy, targets));

  for (const target of targets) {
    let applied = 0;
    for (const test of results.tests) {
      const c = evaluateTarget(target, test, policy.targetWarnMargin);
      if (c) {
        checks.push(c);
        applied++;
      }
    }
    if (applied === 0) {
      const where = target.test ? `test ${target.test}` : "any test";
      const inTest = target.test ? results.tests.filter((t) => t.name === target.test) : results.tests;
      throw new BadInputError(`target "${target.expression}": ${where} did not measure ${target.metric}`, {
        subject: "targets",
        hint:
          inTest.length === 0 && target.test
            ? `tests in this run: ${results.tests.map((t) => t.name).join(", ")}`
            : `metrics measured: ${measuredMetrics(inTest).join(", ")}`,
      });
    }
  }

  if (input.baseline) {
    const b = input.baseline;
    const name = b.file ?? b.name;
    // Another machine (or suite) is not comparable; another configuration is what is being judged.
    const diffs = baselineDifferences(b.results, results);
    if (diffs.length > 0) {
      checks.push({
        test: "*",
        metric: "*",
        source: "baseline",
        verdict: "warn",
        reason: `not comparable with baseline ${name}: ${describeDifferences(diffs)}; baseline comparison skipped`,
      });
    } else {
      checks.push(...compareTests(baselineRuns(b), [results, ...(input.moreRuns ?? [])], policy, input.options));
    }
  }
  const verdict = summarize(checks, input.baseline ? (input.baseline.file ?? input.baseline.name) : undefined);
  if (input.baseline) verdict.changes = configurationChanges(input.baseline.results, results);
  return verdict;
}

export interface AbJudgeInput {
  /** Arm A's runs (the base), in pair order: a[i] ran next to b[i]. */
  a: readonly Results[];
  /** Arm B's runs (the head), in pair order. */
  b: readonly Results[];
  targets?: ReadonlyArray<TargetSpec | Target>;
  policy?: Policy | PolicyInput;
  options?: CompareOptions;
}

/**
 * The same-runner A/B verdict (tokengate ab): the head arm's targets and run health on its first run, aborted tests in
 * any of its runs, and the comparison of the arms as interleaved pairs (compare.ts paired mode). The same policy and
 * verdict states as the stored-baseline gate; no environment check (both arms ran on this machine, in this job) and
 * no confirmation rerun (the pairs are the repetition).
 */
export function judgeAb(input: AbJudgeInput): Verdict {
  const policy = resolvePolicy(input.policy as PolicyInput);
  const head = input.b[0];
  const base = input.a[0];
  if (!head || !base) throw new BadInputError("an A/B needs at least one run of each arm", { subject: "tokengate ab" });
  const own = judge({ results: head, ...(input.targets ? { targets: input.targets } : {}), policy });
  const checks: Check[] = [...own.checks];
  // Aborted tests in the other runs: a head run's fails the verdict; a base run's leaves that pair partial.
  const aborted = (runs: readonly Results[], from: number, make: (t: TestResult, k: number) => Check) =>
    runs.slice(from).flatMap((run, i) => run.tests.filter((t) => t.aborted).map((t) => make(t, i + from + 1)));
  checks.push(
    ...aborted(input.b, 1, (t, k) => ({
      test: t.name,
      metric: "*",
      source: "run",
      verdict: "fail",
      reason: `test aborted in head run ${k}: ${t.aborted}`,
    })),
    ...aborted(input.a, 0, (t, k) => ({
      test: t.name,
      metric: "*",
      source: "baseline",
      verdict: "warn",
      reason: `test aborted in base run ${k}: ${t.aborted}; that pair compares what was measured`,
    })),
  );
  checks.push(...compareTests(input.a, input.b, policy, { ...input.options, paired: true }));
  const verdict = summarize(checks, "arm A");
  verdict.changes = configurationChanges(base, head);
  return verdict;
}

/**
 * `tokengate compare --baseline A.json --candidate B.json`: the baseline comparison alone. Unlike judge(), it compares
 * even when the environments differ, because the user asked for exactly these two files (an A/B of server flags is
 * the usual reason); the difference is a warn check and leads the reason, so it is never silent. Either side may be
 * several runs (a multi-run baseline's runs, or several candidate results files).
 */
export function compareResults(
  baselineSide: Runs,
  candidateSide: Runs,
  policyInput: Policy | PolicyInput = {},
  options: CompareOptions = {},
): Verdict {
  const policy = resolvePolicy(policyInput as PolicyInput);
  const checks: Check[] = [];
  const baseline = asRuns(baselineSide)[0]!;
  const candidate = asRuns(candidateSide)[0]!;
  const diffs = baselineDifferences(baseline, candidate);
  if (diffs.length > 0) {
    checks.push({
      test: "*",
      metric: "*",
      source: "baseline",
      verdict: "warn",
      reason: `environments differ, compared as asked: ${describeDifferences(diffs)}`,
    });
  }
  const compared = compareTests(baselineSide, candidateSide, policy, options);
  if (!compared.some((c) => c.metric !== "*")) {
    const only = (a: Results, b: Results) =>
      a.tests.filter((t) => !b.tests.some((u) => u.name === t.name)).map((t) => t.name);
    const differing = compared.filter((c) => c.metric === "*").map((c) => c.reason);
    throw new BadInputError(`nothing to compare: the two results share no comparable test (${differing.join("; ")})`, {
      subject: "--candidate",
      hint: `baseline tests: ${baseline.tests.map((t) => t.name).join(", ") || "none"} (only there: ${only(baseline, candidate).join(", ") || "none"}); candidate tests: ${candidate.tests.map((t) => t.name).join(", ") || "none"}. Compare results of the same suite`,
    });
  }
  const verdict = summarize([...checks, ...compared], "baseline");
  verdict.changes = configurationChanges(baseline, candidate);
  return verdict;
}

/** Aborted tests fail; the error rate is gated absolutely (a relative change of 0 errors means nothing). */
function runChecks(test: TestResult, policy: Policy, targets: readonly Target[]): Check[] {
  const out: Check[] = [];
  if (test.aborted) {
    out.push({ test: test.name, metric: "*", source: "run", verdict: "fail", reason: `test aborted: ${test.aborted}` });
  }
  const hasErrorTarget = targets.some((t) => t.metric === "error_rate" && (!t.test || t.test === test.name));
  const { attempted, failed } = test.requests ?? { attempted: 0, failed: 0 };
  if (!hasErrorTarget && attempted > 0) {
    const rate = failed / attempted;
    const { warn, fail } = policy.errorRate;
    const verdict: VerdictLevel = rate >= fail && rate > 0 ? "fail" : rate > warn ? "warn" : "pass";
    const head = `error rate ${formatValue(rate, "ratio")} (${failed} of ${attempted} requests failed)`;
    const reason =
      verdict === "fail"
        ? `${head}: at or above fail ${formatPercent(fail)}`
        : verdict === "warn"
          ? `${head}: above warn ${formatPercent(warn)}`
          : head;
    out.push({ test: test.name, metric: "error_rate", source: "run", verdict, value: rate, reference: fail, reason });
  }
  return out;
}

/** Overall = the worst check; the reason names the first check at that level and counts the rest. */
export function summarize(checks: Check[], baselineName?: string): Verdict {
  const overall = checks.reduce<VerdictLevel>((w, c) => (RANK[c.verdict] > RANK[w] ? c.verdict : w), "pass");
  const at = checks.filter((c) => c.verdict === overall);
  const count = (v: VerdictLevel) => checks.filter((c) => c.verdict === v).length;
  if (checks.length === 0) {
    return { overall, checks, reason: "pass: nothing to check (no targets and no baseline)" };
  }
  if (overall === "pass") {
    const nb = checks.filter((c) => c.source === "baseline").length;
    const nt = checks.filter((c) => c.source === "target").length;
    const parts = [nb ? `${nb} vs baseline${baselineName ? ` ${baselineName}` : ""}` : "", nt ? `${nt} targets` : ""];
    const what = parts.filter(Boolean).join(", ");
    return { overall, checks, reason: `pass: ${checks.length} checks passed${what ? ` (${what})` : ""}` };
  }
  // Cite the worst regression at this level, so the one line names what matters most.
  const first = [...at].sort((a, b) => worseOf(b) - worseOf(a))[0]!;
  const where = first.test === "*" ? "" : `${first.test}: `;
  const others: string[] = [];
  if (at.length > 1) others.push(`${at.length - 1} more ${overall}`);
  if (overall === "fail" && count("warn") > 0) others.push(`${count("warn")} warn`);
  return {
    overall,
    checks,
    reason: `${overall}: ${where}${first.reason}${others.length ? ` (+${others.join(", ")})` : ""}`,
  };
}

function worseOf(c: Check): number {
  const ch = c.comparison?.change;
  if (ch === undefined) return c.source === "baseline" ? -1 : 0.5;
  return Math.abs(ch);
}

// ---------------------------------------------------------------------------------------------------------------
// Confirmation rerun

export interface ConfirmationPlan {
  /** True when the pipeline should rerun before failing. */
  needed: boolean;
  /** Tests to rerun (the ones with failing baseline checks). */
  tests: string[];
  reason: string;
}

/**
 * Whether a verdict should be confirmed by a rerun before it fails. Only baseline-comparison fails are confirmed:
 * targets and error rates are absolute, and a rerun cannot make a crash untrue. A verdict that already went through
 * confirmation is not confirmed again.
 */
export function planConfirmation(verdict: Verdict, policyInput: Policy | PolicyInput = {}): ConfirmationPlan {
  const policy = resolvePolicy(policyInput as PolicyInput);
  const fails = verdict.checks.filter(
    (c) => c.source === "baseline" && c.verdict === "fail" && !c.comparison?.confirmation,
  );
  const tests = [...new Set(fails.map((c) => c.test))];
  if (!policy.confirmFails) return { needed: false, tests: [], reason: "confirmation reruns are off" };
  if (tests.length === 0) return { needed: false, tests: [], reason: "no unconfirmed baseline fail" };
  return {
    needed: true,
    tests,
    reason: `rerun ${tests.join(", ")} to confirm ${fails.length} failing comparison${fails.length === 1 ? "" : "s"} before failing`,
  };
}

/**
 * Merges the confirmation into the first verdict. `second` judges the candidate's runs together (the first run and the
 * rerun, each in its own server process, as two runs: judge({ results, moreRuns: [rerun] }); decide.ts confirmVerdict
 * does this for the pipeline); a verdict of the rerun alone is accepted too. A fail stands when `second` shows a
 * significant regression of at least the warn threshold on the same metric (fail, or a significant warn) and, when
 * `rerunAlone` is given, the rerun by itself regressed by at least the warn threshold at p <= alpha (that metric alone,
 * before Holm); otherwise it becomes warn "not confirmed". Why both: measured on a shared machine, about one run in six was overloaded (2-9x slower); two
 * runs judged together can still look significant when only the first was such a run, while that rerun by itself
 * shows no regression. Requiring a full second fail, or the rerun's own Holm-corrected significance, would cost
 * detection (one run against a baseline has little power; the point estimate of a true 10% slowdown falls below 10%
 * half the time).
 */
export function applyConfirmation(
  first: Verdict,
  second: Verdict,
  policyInput: Policy | PolicyInput = {},
  /**
   * `runs`: how many candidate runs `second` judged together (2: the first run and the rerun). Default 1.
   * `rerunAlone`: the rerun judged by itself; when given, it must regress by at least warn too, at p <= alpha.
   */
  options: { runs?: number; rerunAlone?: Verdict } = {},
): Verdict {
  const policy = resolvePolicy(policyInput as PolicyInput);
  const regresses = (v: Verdict, c: Check) => {
    const again = v.checks.find((r) => r.source === "baseline" && r.test === c.test && r.metric === c.metric);
    return (
      again?.comparison !== undefined &&
      (again.verdict === "fail" ||
        (again.verdict === "warn" &&
          !again.comparison.inconclusive &&
          (again.comparison.pAdjusted ?? 1) <= policy.alpha))
    );
  };
  // The rerun by itself moves the same way by at least the warn threshold, significantly for this one metric (p <= alpha
  // before Holm: the two runs together already carried the family-wise test; this only asks whether the rerun, on its
  // own, shows the regression at all).
  const sameWay = (v: Verdict, c: Check) => {
    const again = v.checks.find((r) => r.source === "baseline" && r.test === c.test && r.metric === c.metric);
    const first = c.comparison!.change;
    const rerun = again?.comparison;
    return (
      rerun !== undefined &&
      Math.sign(rerun.change) === Math.sign(first) &&
      Math.abs(rerun.change) >= policy.warn &&
      (rerun.pValue ?? 1) <= policy.alpha
    );
  };
  const checks = first.checks.map((c): Check => {
    if (c.source !== "baseline" || c.verdict !== "fail" || !c.comparison || c.comparison.confirmation) return c;
    const again = second.checks.find((r) => r.source === "baseline" && r.test === c.test && r.metric === c.metric);
    const significantRegression = regresses(second, c) && (!options.rerunAlone || sameWay(options.rerunAlone, c));
    const rerunText = again?.comparison
      ? `${(options.runs ?? 1) > 1 ? `${options.runs} runs` : "rerun"} ${formatChange(again.comparison.change)}`
      : "not measured on rerun";
    if (significantRegression) {
      return {
        ...c,
        reason: `${c.reason}; confirmed: ${rerunText}`,
        comparison: { ...c.comparison, confirmation: "confirmed" },
      };
    }
    return {
      ...c,
      verdict: "warn",
      reason: `${c.reason}; not confirmed: ${rerunText}${again ? ` (${again.verdict})` : ""}`,
      comparison: { ...c.comparison, confirmation: "not-confirmed" },
    };
  });
  return summarize(checks);
}

/**
 * A run that ended early is never a pass and never a baseline: `status` says interrupted (a signal) or aborted (the
 * server died or stalled), with the reason, and a run check fails the verdict (baseline update refuses such a run).
 */
export function markStopped(results: Results, reason: string, interrupted: boolean): void {
  results.status = interrupted ? "interrupted" : "aborted";
  results.statusReason = reason;
  const check = {
    test: "*",
    metric: "*",
    source: "run" as const,
    verdict: "fail" as const,
    reason: `run ${interrupted ? "interrupted" : "aborted"}: ${reason}; the results are partial`,
  };
  results.verdict = {
    ...summarize([...results.verdict.checks, check]),
    ...(results.verdict.changes ? { changes: results.verdict.changes } : {}),
  };
}
