import type { EnvironmentFingerprint } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";
import { isStat, type Stat } from "./format.js";

/** One gated quantity: a metric of a test's headline metrics and the statistic of its per-trial summaries. */
export interface GatedMetric {
  /** Key in TestResult.metrics, e.g. `ttft_ms`. */
  metric: string;
  stat: Stat;
}

/**
 * How a run is judged against its baseline. All thresholds are fractions of the baseline (0.05 = 5%) in the metric's
 * worse direction (`better` in the results says which way that is).
 */
export interface Policy {
  /** A regression at or above this warns (when significant). Default 0.05. */
  warn: number;
  /** A regression at or above this fails (when significant). Default 0.10. */
  fail: number;
  /** Changes smaller than this pass without a test: below what runners reproduce. Default 0.02 (Perfherder's 2%). */
  noiseFloor: number;
  /** Family-wise false-alarm rate for the rank tests, after Holm's correction. Default 0.05. */
  alpha: number;
  /**
   * Power at which every comparison states the smallest change it would have detected ("this run would have caught
   * >= 4.1%"): what a pass is worth. Default 0.95.
   */
  power: number;
  /**
   * What a regression-sized change that is not significant gives: `pass` (unset) or `warn`. Its reason says
   * "inconclusive" and what the comparison could have caught either way (docs/verdicts.md "Inconclusive").
   */
  inconclusive?: "warn" | "pass";
  /** Fewer per-trial values than this on either side is too little evidence: warn "inconclusive". Default 5. */
  minTrials: number;
  /** Confidence level of the bootstrap interval of the ratio of medians. Default 0.95. */
  ciLevel: number;
  /** Bootstrap resamples per metric. Default 2000. */
  bootstrapResamples: number;
  /** Seed of the bootstrap's random numbers, so a verdict is reproducible. Default 1. */
  seed: number;
  /** Metrics compared with the baseline. Default: DEFAULT_GATED. */
  gate: GatedMetric[];
  /**
   * Which metrics share one Holm correction: `test` (each test's gated metrics; default) or `run` (every compared
   * metric of the run). See docs/verdicts.md for why `test` is the default at 5 trials.
   */
  holmFamily: "test" | "run";
  /** Absolute error-rate gate on every test (failed / attempted): warn above `warn`, fail at or above `fail`. */
  errorRate: { warn: number; fail: number };
  /** A value within this fraction of an absolute target warns. Default 0.10. */
  targetWarnMargin: number;
  /** Ask the pipeline for a confirmation rerun before a baseline comparison fails. Default true. */
  confirmFails: boolean;
  /**
   * Assumed run-to-run noise: the sd of a whole run's level (a fresh server process on the same machine), as a
   * fraction, beyond what its trials show. Used alone when the baseline and the candidate have one run each, and as a
   * prior worth `runNoiseDf` degrees of freedom when they have more (docs/verdicts.md "Run-to-run noise").
   * Default: by the baseline's environment, RUN_NOISE_DEFAULTS (measured: a GPU machine's runs differ less).
   */
  runNoise?: number;
  /** How many degrees of freedom (about: runs minus one) the assumed runNoise counts as. Default RUN_NOISE_DF_DEFAULT. */
  runNoiseDf: number;
  /**
   * A candidate run during which other work (other processes, and steal) used more than this share of the machine's
   * CPU time is not failed against a baseline: its fails become warns that say why (measure/machine-load.ts;
   * docs/verdicts.md "Busy machines"). Default 0.25; 1 turns the guard off.
   */
  busyMachine: number;
  /**
   * A run whose server sent no byte and finished no request for this long while requests were in flight is ended as
   * "server stalled" (arms/measure-run.ts): the test is aborted, the rest skipped, the verdict fails. Default 20 s.
   */
  stallWindowS: number;
}

/** The default gate: latency medians and tails, decode speed, throughput (error rate is gated absolutely). */
export const DEFAULT_GATED: readonly GatedMetric[] = [
  { metric: "ttft_ms", stat: "p50" },
  { metric: "ttft_ms", stat: "p95" },
  { metric: "e2e_ms", stat: "p50" },
  { metric: "e2e_ms", stat: "p95" },
  { metric: "tpot_ms", stat: "p50" },
  { metric: "decode_tokens_per_s", stat: "p50" },
  { metric: "output_tokens_per_s", stat: "mean" },
  { metric: "requests_per_s", stat: "mean" },
];

/**
 * Default run-to-run noise (policy.runNoise) by where the model runs, from separate runs of one suite on one machine
 * (docs/verdicts.md "Run-to-run noise" has the measurements): the median over gated metrics of the between-run sd.
 * - gpu: an H200 with 7B q4_0 models on llama-server, the gpu-validate suite: two pools of 14 runs (32 and 36 layers,
 *   docs/runs/validation/h200-l32-l36) measured a median of 2.7% and 2.8% over the gated metrics (max 7%: TTFT under
 *   concurrency); an earlier pool of 3 runs on another lease, 6%. 3% is the median, rounded up; metrics noisier than
 *   that show it in a multi-run baseline's own spread, which the prior is combined with.
 * - cpu: a shared 2-core machine (load 3-10 from other jobs), tiny and small models in-process (8-12 runs a pool):
 *   medians 25-60%, with some runs 2-6x slower. 30% keeps A/A false fails of those pools at or below ~3% after the
 *   confirmation rerun; a dedicated CPU machine should set its own (tokengate validate measures it).
 */
export const RUN_NOISE_DEFAULTS = { gpu: 0.03, cpu: 0.3 } as const;
export const RUN_NOISE_DF_DEFAULT = 4;

/** The assumed run-to-run noise for an environment: the policy's, else RUN_NOISE_DEFAULTS by whether it has a GPU. */
export function runNoiseFor(policy: Pick<Policy, "runNoise">, env: Pick<EnvironmentFingerprint, "gpus">): number {
  return policy.runNoise ?? (env.gpus.length > 0 ? RUN_NOISE_DEFAULTS.gpu : RUN_NOISE_DEFAULTS.cpu);
}

export const DEFAULT_POLICY: Readonly<Policy> = Object.freeze({
  warn: 0.05,
  fail: 0.1,
  noiseFloor: 0.02,
  alpha: 0.05,
  power: 0.95,
  minTrials: 5,
  ciLevel: 0.95,
  bootstrapResamples: 2000,
  seed: 1,
  gate: [...DEFAULT_GATED],
  holmFamily: "test",
  errorRate: { warn: 0, fail: 0.01 },
  targetWarnMargin: 0.1,
  confirmFails: true,
  runNoiseDf: RUN_NOISE_DF_DEFAULT,
  busyMachine: 0.25,
  stallWindowS: 20,
});

const EXAMPLES = {
  warn: "0.05 (5%)",
  fail: "0.10 (10%)",
  noiseFloor: "0.02 (2%)",
  targetWarnMargin: "0.10 (10%)",
  runNoise: "0.03 (3%)",
  busyMachine: "0.25 (25%; 1 turns the guard off)",
} as const;

/**
 * Other work's share of the machine during a test when it is above the busy-machine threshold (the policy's, else the
 * default), else undefined: the one rule the verdict's guard, baseline update and the bottleneck analysis share.
 * Undefined too when the server under test ran on this machine but its process was not found (`serverUnknown`): its
 * own CPU time is then inside otherShare, which cannot tell a busy machine from a busy server, and switching the
 * comparison off on every such run would gate nothing (docs/verdicts.md "Busy machines").
 */
export function busyShare(
  load: { otherShare: number; serverUnknown?: string } | undefined,
  threshold: number = DEFAULT_POLICY.busyMachine,
): number | undefined {
  if (!load || load.serverUnknown !== undefined) return undefined;
  return load.otherShare > threshold ? load.otherShare : undefined;
}

export type PolicyInput = Partial<Omit<Policy, "errorRate">> & { errorRate?: Partial<Policy["errorRate"]> };

/**
 * Fills defaults and checks ranges. `subject` prefixes field names in errors (`--fail-threshold`, `policy.fail`), so a
 * caller that maps flags to fields can pass its own naming through `subjects`.
 */
export function resolvePolicy(input: PolicyInput = {}, subjects: Partial<Record<keyof Policy, string>> = {}): Policy {
  const p: Policy = {
    ...DEFAULT_POLICY,
    ...stripUndefined(input),
    gate: input.gate ? [...input.gate] : [...DEFAULT_POLICY.gate],
    errorRate: { ...DEFAULT_POLICY.errorRate, ...stripUndefined(input.errorRate ?? {}) },
  };
  const name = (k: keyof Policy) => subjects[k] ?? `policy.${k}`;
  const fraction = (
    k: "warn" | "fail" | "noiseFloor" | "targetWarnMargin" | "runNoise" | "busyMachine",
    max: number,
  ) => {
    const v = p[k] as number;
    if (!Number.isFinite(v) || v < 0 || v > max) {
      throw new BadInputError(`must be a fraction between 0 and ${max}, got ${v}`, {
        subject: name(k),
        hint: `use a fraction or a percent, e.g. ${EXAMPLES[k]}`,
      });
    }
  };
  fraction("noiseFloor", 1);
  fraction("warn", 10);
  fraction("fail", 10);
  fraction("targetWarnMargin", 1);
  fraction("busyMachine", 1);
  if (p.runNoise !== undefined) fraction("runNoise", 2);
  if (!(Number.isFinite(p.runNoiseDf) && p.runNoiseDf >= 0 && p.runNoiseDf <= 1000)) {
    throw new BadInputError(`must be a number from 0 to 1000, got ${p.runNoiseDf}`, {
      subject: name("runNoiseDf"),
      hint: "e.g. 4 (the assumed run noise counts as much as the spread of 5 runs)",
    });
  }
  if (p.warn > p.fail) {
    throw new BadInputError(`warn threshold ${p.warn} is above the fail threshold ${p.fail}`, {
      subject: name("warn"),
      hint: "warn must be at most fail, e.g. warn 0.05 and fail 0.10",
    });
  }
  if (p.noiseFloor > p.warn) {
    throw new BadInputError(`noise floor ${p.noiseFloor} is above the warn threshold ${p.warn}`, {
      subject: name("noiseFloor"),
      hint: "a noise floor says which changes are too small to matter; keep it below warn, e.g. 0.02",
    });
  }
  if (!(p.alpha > 0 && p.alpha < 0.5)) {
    throw new BadInputError(`must be between 0 and 0.5, got ${p.alpha}`, { subject: name("alpha"), hint: "e.g. 0.05" });
  }
  if (!(Number.isFinite(p.stallWindowS) && p.stallWindowS >= 1 && p.stallWindowS <= 3600)) {
    throw new BadInputError(`must be from 1 to 3600 seconds, got ${p.stallWindowS}`, {
      subject: name("stallWindowS"),
      hint: "e.g. 20 (longer than the server's slowest first token under load)",
    });
  }
  if (!(p.power > 0.5 && p.power < 1)) {
    throw new BadInputError(`must be between 0.5 and 1, got ${p.power}`, { subject: name("power"), hint: "e.g. 0.95" });
  }
  if (!(p.ciLevel >= 0.5 && p.ciLevel < 1)) {
    throw new BadInputError(`must be in [0.5, 1), got ${p.ciLevel}`, { subject: name("ciLevel"), hint: "e.g. 0.95" });
  }
  if (!Number.isInteger(p.minTrials) || p.minTrials < 2) {
    throw new BadInputError(`must be an integer of at least 2, got ${p.minTrials}`, {
      subject: name("minTrials"),
      hint: "a rank test needs repeated trials on both sides, e.g. 5",
    });
  }
  if (!Number.isInteger(p.bootstrapResamples) || p.bootstrapResamples < 100) {
    throw new BadInputError(`must be an integer of at least 100, got ${p.bootstrapResamples}`, {
      subject: name("bootstrapResamples"),
      hint: "e.g. 2000",
    });
  }
  if (!Number.isInteger(p.seed)) {
    throw new BadInputError(`must be an integer, got ${p.seed}`, { subject: name("seed"), hint: "e.g. 1" });
  }
  if (p.inconclusive !== undefined && p.inconclusive !== "warn" && p.inconclusive !== "pass") {
    throw new BadInputError(`must be "warn" or "pass", got ${String(p.inconclusive)}`, {
      subject: name("inconclusive"),
    });
  }
  if (p.holmFamily !== "test" && p.holmFamily !== "run") {
    throw new BadInputError(`must be "test" or "run", got ${String(p.holmFamily)}`, { subject: name("holmFamily") });
  }
  const er = p.errorRate;
  if (!(er.warn >= 0 && er.fail >= er.warn && er.fail <= 1)) {
    throw new BadInputError(`needs 0 <= warn <= fail <= 1, got warn ${er.warn}, fail ${er.fail}`, {
      subject: name("errorRate"),
      hint: "e.g. warn 0 (any error warns) and fail 0.01 (1% of requests)",
    });
  }
  for (const [i, g] of p.gate.entries()) {
    if (!g.metric || !isStat(g.stat)) {
      throw new BadInputError(`entry ${i} is not a metric and a statistic: ${JSON.stringify(g)}`, {
        subject: name("gate"),
        hint: 'e.g. { metric: "ttft_ms", stat: "p95" }',
      });
    }
  }
  return p;
}

/** The suite file's `policy:` block (config/suite-schema.ts policySchema, fractions already parsed) as a PolicyInput. */
export interface PolicyBlock extends Omit<PolicyInput, "gate" | "errorRate"> {
  errorRate?: { warn?: number | undefined; fail?: number | undefined } | undefined;
  gate?: string[] | undefined;
}

export function policyFromBlock(block: PolicyBlock | undefined): PolicyInput {
  if (!block) return {};
  const { gate, errorRate, ...rest } = block;
  const out: PolicyInput = { ...(stripUndefined(rest) as PolicyInput) };
  if (errorRate) out.errorRate = stripUndefined(errorRate) as PolicyInput["errorRate"];
  if (gate) {
    out.gate = gate.map((g) => {
      const dot = g.lastIndexOf(".");
      return { metric: g.slice(0, dot), stat: g.slice(dot + 1) as Stat };
    });
  }
  return out;
}

/**
 * Reads a threshold as a user writes it in a flag or an action input: `10%`, `0.1`, `10 %`. Numbers above 1 without a
 * percent sign are refused: `10` could mean 10% or 1000%.
 */
export function parseFraction(text: string, subject: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(%?)\s*$/i.exec(text);
  if (!m) {
    throw new BadInputError(`not a fraction or a percent: ${JSON.stringify(text)}`, {
      subject,
      hint: "write 10% or 0.10",
    });
  }
  const v = Number(m[1]);
  if (m[2]) return v / 100;
  if (v > 1) {
    throw new BadInputError(`${text} is ambiguous: a fraction above 1 or a percent without %`, {
      subject,
      hint: `write ${v}% or ${v / 100}`,
    });
  }
  return v;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
