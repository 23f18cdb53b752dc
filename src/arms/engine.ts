/**
 * The arms engine: N configurations of one workload measured on one machine, in a given order (interleaved for an
 * A/B), each run in a freshly started server (measureRun), each run's files in its own folder. The same-runner A/B
 * gate is its first user; optimization experiments and scaling are meant to run on it too.
 *
 * Whatever happens, every server it started is stopped (measureRun's finally) and every finished run is on disk:
 * a run that cannot start its server ends the engine with that arm named, and the runs before it stay.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { RecordSink } from "../measure/record-sink.js";
import type { Results } from "../measure/results.js";
import { writeJsonAtomic } from "../report/write.js";
import type { Endpoint, Target } from "../target/types.js";
import { isTokengateError } from "../util/errors.js";
import type { ResolvedArm } from "./arm.js";
import { measureRun } from "./measure-run.js";

export interface ArmRun {
  arm: string;
  /** 1-based index among this arm's runs. */
  index: number;
  /** Position in the whole order (1-based). */
  slot: number;
  dir: string;
  results: Results;
  stopped?: string;
}

export interface EngineInput {
  arms: Record<string, ResolvedArm>;
  /** Arm names in run order, e.g. A B B A A B. */
  order: string[];
  /** Each run writes `<outDir>/runs/<arm>-<index>/`. */
  outDir: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  onTargetStarted?: (target: Target, endpoint: Endpoint) => void;
}

export interface EngineOutput {
  runs: ArmRun[];
  /** Set when the engine stopped before the end of the order (interrupted, a server died). */
  stopped?: string;
}

export async function runArms(input: EngineInput): Promise<EngineOutput> {
  const runs: ArmRun[] = [];
  const counts = new Map<string, number>();
  for (const [i, name] of input.order.entries()) {
    if (input.signal?.aborted) return { runs, stopped: "interrupted" };
    const arm = input.arms[name]!;
    const index = (counts.get(name) ?? 0) + 1;
    counts.set(name, index);
    const dir = join(input.outDir, "runs", `${name}-${index}`);
    mkdirSync(dir, { recursive: true });
    const resultsFile = join(dir, "results.json");
    const sink = new RecordSink(join(dir, "records.ndjson"));
    const label = `arm ${name} (${arm.spec.label}) run ${index}, ${i + 1} of ${input.order.length}`;
    try {
      const measured = await measureRun({
        loaded: arm.loaded,
        plan: arm.plan,
        config: { ...arm.config, outDir: dir },
        sink,
        label,
        log: input.log,
        onProgress: (partial) => writeJsonAtomic(resultsFile, partial),
        ...(input.signal ? { signal: input.signal } : {}),
        ...(input.onTargetStarted ? { onTargetStarted: input.onTargetStarted } : {}),
      });
      writeJsonAtomic(resultsFile, measured.results);
      const run: ArmRun = { arm: name, index, slot: i + 1, dir, results: measured.results };
      if (measured.stopped) run.stopped = measured.stopped;
      runs.push(run);
      if (measured.stopped) return { runs, stopped: `${label}: ${measured.stopped}` };
    } catch (e) {
      // The runs before this one are on disk already; say which arm could not be measured.
      if (isTokengateError(e)) e.message = `${label}: ${e.message}`;
      throw e;
    } finally {
      sink.close();
    }
  }
  return { runs };
}
