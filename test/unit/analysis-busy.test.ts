/**
 * The busy-machine guard on real runs: 16 runs of the quick suite on the 2-core dev machine, four of them with real
 * neighbours (one or two spinning processes: runs 4, 7, 10, 13) and two while the developer ran the type checker (1,
 * 2); docs/runs/validation/cpu-neighbours, docs/verdicts.md "Busy machines". With runNoise set to what the quiet runs
 * measure (about 5%), the neighbours' runs false-fail A/A comparisons unless the guard holds them at warn.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { validateFiles } from "../../src/analysis/validate.js";

const dir = fileURLToPath(new URL("../../docs/runs/validation/cpu-neighbours/", import.meta.url));
const runs = Array.from({ length: 16 }, (_, i) => `${dir}c${i + 1}.json`);

describe("busy-machine guard on real CPU runs (A/A, 3-run baselines, runNoise 5%)", () => {
  it("records the neighbours: other work above 25% of the machine in exactly the disturbed runs", async () => {
    const { loadRuns } = await import("../../src/analysis/baseline.js");
    const busy: number[] = [];
    for (const [i, f] of runs.entries()) {
      const [r] = await loadRuns(f);
      if (r!.tests.some((t) => (t.machine?.otherShare ?? 0) > 0.25)) busy.push(i + 1);
    }
    expect(busy).toEqual([1, 2, 4, 7, 10, 13]);
  });

  it("without the guard the disturbed runs false-fail; with it none do", async () => {
    const off = await validateFiles({ a: runs, policy: { runNoise: 0.05, busyMachine: 1 } });
    const on = await validateFiles({ a: runs, policy: { runNoise: 0.05 } });
    expect(off.confirmed.failRate).toBeGreaterThan(0.01);
    expect(on.confirmed.failRate).toBe(0);
    // Only fails move: the passes are the same comparisons.
    expect(on.confirmed.counts.pass).toBe(off.confirmed.counts.pass);
  });
});
