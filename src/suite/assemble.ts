import { computeMetrics, countRequests, crossCheck, type TrialInput } from "../measure/metrics.js";
import type { RequestRecord } from "../measure/record.js";
import type { ScenarioResult, TestResult } from "../measure/results.js";

export interface AssembleArgs {
  name: string;
  kind: string;
  params: Record<string, unknown>;
  /** Measured records of every trial. */
  records: RequestRecord[];
  trials: number;
  /** Scenario name -> params, in display order. */
  scenarios?: Array<{ name: string; params: Record<string, unknown> }>;
  /** Measured window per trial (ns), when the test knows it better than first-start..last-end. */
  windowsNs?: number[];
  aborted?: string;
  extra?: Record<string, unknown>;
}

function byTrial(records: RequestRecord[], trials: number, windowsNs?: number[]): TrialInput[] {
  return Array.from({ length: trials }, (_, t) => ({
    records: records.filter((r) => r.trial === t),
    ...(windowsNs?.[t] === undefined ? {} : { windowNs: windowsNs[t] }),
  })).filter((t) => t.records.length > 0);
}

/** Turns a test's measured records into its TestResult (pure). */
export function assembleTest(a: AssembleArgs): TestResult {
  const measured = a.records.filter((r) => r.measured);
  const trialInputs = byTrial(measured, a.trials, a.windowsNs);
  const windowS = trialInputs.reduce((s, t) => s + (t.windowNs ?? 0), 0) / 1e9;
  const scenarios: ScenarioResult[] = (a.scenarios ?? []).map((sc) => {
    const recs = measured.filter((r) => r.scenario === sc.name);
    return {
      name: sc.name,
      params: sc.params,
      metrics: computeMetrics(byTrial(recs, a.trials)),
      requests: countRequests(recs),
    };
  });
  const cc = crossCheck(measured);
  return {
    name: a.name,
    kind: a.kind,
    params: a.params,
    metrics: computeMetrics(trialInputs),
    scenarios,
    requests: countRequests(measured),
    ...(cc.samples > 0 ? { crossCheck: cc } : {}),
    windowS: windowS || sumWindows(trialInputs),
    trials: a.trials,
    ...(a.extra ? { extra: a.extra } : {}),
    ...(a.aborted ? { aborted: a.aborted } : {}),
  };
}

function sumWindows(trials: TrialInput[]): number {
  let s = 0;
  for (const t of trials) {
    if (t.records.length === 0) continue;
    s += Math.max(...t.records.map((r) => r.endNs)) - Math.min(...t.records.map((r) => r.startNs));
  }
  return s / 1e9;
}
