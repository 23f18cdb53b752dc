/**
 * The gate's committed figures (docs/verdicts.md "The gate, end to end") against the committed run files they were
 * computed from: the A/A and A/B rates of `tokengate ab` on the H200 and on the 2-core CPU machine, and the committed
 * baselines' own claims (which machine, how many runs). If the statistics change, these figures must be re-measured
 * with bench/gate-rates.ts (the command is in docs/verdicts.md), never edited by hand.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { GateRates } from "../../bench/helpers/gate-rates.js";
import { loadPairs } from "../../bench/helpers/gate-rates.js";
import { loadBaseline } from "../../src/analysis/baseline.js";
import { validateAb } from "../../src/analysis/validate-ab.js";

const root = new URL("../../", import.meta.url).pathname;
const rates = (machine: string) =>
  JSON.parse(readFileSync(`${root}docs/runs/${machine}-gate/rates.json`, "utf8")) as GateRates;
const dirs = (machine: string, names: string[]) => names.map((n) => `${root}docs/runs/${machine}-gate/${n}`);

const POOLS = {
  h200: { aa: ["aa-p2-1", "aa-p2-3", "aa-p3-1", "aa-p3-3"], ab: ["ab-p2-2", "ab-p3-2", "ab-p4-1", "ab-p4-2"] },
  cpu: { aa: ["aa-pool", "aa-1", "aa-2", "aa-pool2"], ab: ["ab-1", "ab-2"] },
} as const;

describe.each(["h200", "cpu"] as const)("committed A/B gate figures (%s)", (machine) => {
  const committed = rates(machine);

  it("the A/A rates and the detectable changes recompute from the committed runs", async () => {
    const pairs = await loadPairs(dirs(machine, [...POOLS[machine].aa]));
    expect(pairs.length).toBe(committed.aaPairs);
    const again = validateAb({ pairs, n: committed.aa.n });
    expect(again.counts).toEqual(committed.aa.counts);
    expect(again.detectable).toEqual(committed.aa.detectable);
    // The goals: an A/A gate fails at most 1% and warns at most 5% of the time.
    expect(committed.aa.failRate).toBeLessThanOrEqual(0.01);
    expect(committed.aa.warnRate).toBeLessThanOrEqual(0.05);
  }, 120_000);

  it("the real slowdown is failed in at least 95% of the gates", async () => {
    const pairs = await loadPairs(dirs(machine, [...POOLS[machine].ab]));
    expect(pairs.length).toBe(committed.abPairs);
    const again = validateAb({ pairs, n: committed.ab!.n });
    expect(again.counts).toEqual(committed.ab!.counts);
    expect(committed.ab!.failRate).toBeGreaterThanOrEqual(0.95);
  }, 120_000);
});

describe("committed baselines", () => {
  it("baselines/cpu-quick.json: 5 runs of the quick suite on the 2-core CI machine class", async () => {
    const b = await loadBaseline(`${root}baselines/cpu-quick.json`);
    expect(b.results.suite.name).toBe("quick");
    expect([b.results, ...(b.moreRuns ?? [])]).toHaveLength(5);
    expect(b.results.environment).toMatchObject({ cpuCount: 2, gpus: [] });
    expect(b.results.environment.target.kind).toBe("in-process");
  });

  it("baselines/h200-gpu-gate.json: 4 runs of gpu-gate on one H200 with the 7B-shaped q4_0 model", async () => {
    const b = await loadBaseline(`${root}baselines/h200-gpu-gate.json`);
    expect(b.results.suite.name).toBe("gpu-gate");
    expect([b.results, ...(b.moreRuns ?? [])]).toHaveLength(4);
    expect(b.results.environment.gpus.map((g) => g.name)).toEqual(["NVIDIA H200"]);
    expect(b.results.environment.target.model).toMatchObject({ quantization: "q4_0", shape: { layers: 32 } });
  });
});
