import { describe, expect, it } from "vitest";
import {
  DRIFT_TOLERANCE,
  type Probe,
  type ProbePhase,
  ratioDifference,
  type SearchSettings,
  searchMaxLoad,
} from "../../src/suite/max-load.js";
import { createRng } from "../../src/util/rng.js";

/**
 * Probe sequences whose server is not the same throughout the search: the search must say it drifted, with both
 * figures of the load it repeated, instead of reporting a boundary.
 */
const CONC: SearchSettings = { start: 1, max: 256, integer: true, tolerance: 0.1, confirm: true, maxProbes: 30 };

/** Worst SLO ratio as a function of load and of how many probes ran before (a server that slows down over time). */
function sequence(ratio: (load: number, index: number) => number): Probe & { calls: Array<[number, ProbePhase]> } {
  const calls: Array<[number, ProbePhase]> = [];
  const probe = async (load: number, phase: ProbePhase) => {
    const r = ratio(load, calls.length);
    calls.push([load, phase]);
    return { pass: r <= 1, ratio: r };
  };
  return Object.assign(probe, { calls });
}

describe("max-load search on a drifting server", () => {
  it("a server that gets slower with every probe: the repeat disagrees, no boundary, both figures reported", async () => {
    // Latency / bound = load / 20, times 1.08 per probe already run: by the confirm, the same load takes far longer.
    const probe = sequence((load, i) => (load / 20) * 1.08 ** i);
    const o = await searchMaxLoad(probe, CONC);
    expect(o.end).toBe("drifted");
    expect(o.maxPassing).toBeUndefined();
    expect(o.minFailing).toBeUndefined();
    expect(o.confirmed).toBe(false);
    const d = o.drift!;
    expect(d.repeat.phase).toBe("confirm");
    expect(d.first.load).toBe(d.load);
    expect(d.repeat.load).toBe(d.load);
    expect(d.repeat.index).toBe(o.probes.length - 1);
    expect(d.first.index).toBeLessThan(d.repeat.index);
    // The figures are the probes' own, and they differ by more than the tolerance.
    expect(d.first.ratio).toBeCloseTo((d.load / 20) * 1.08 ** d.first.index, 9);
    expect(d.repeat.ratio).toBeCloseTo((d.load / 20) * 1.08 ** d.repeat.index, 9);
    expect(d.difference).toBeGreaterThan(DRIFT_TOLERANCE);
    expect(d.tolerance).toBe(DRIFT_TOLERANCE);
    expect(d.reason).toContain(d.first.ratio.toFixed(2));
    expect(d.reason).toContain(d.repeat.ratio.toFixed(2));
    expect(d.reason).toMatch(/beyond the 25% drift tolerance/);
    // Where the search stood is kept as evidence (a bracket that is not a boundary).
    expect(d.bracket.maxPassing).toBe(d.load);
    expect(d.bracket.minFailing).toBeGreaterThan(d.load);
    // The search stopped at the disagreement: no probe after it.
    expect(probe.calls).toHaveLength(o.probes.length);
  });

  it("passed first, failed clearly on the repeat: drift, not a lower boundary", async () => {
    const seen = new Map<number, number>();
    const probe: Probe = async (load) => {
      const n = (seen.get(load) ?? 0) + 1;
      seen.set(load, n);
      // 8 users: 0.6 the first time, 1.4 on the repeat (the server changed between them).
      const r = load === 8 ? (n === 1 ? 0.6 : 1.4) : load < 8 ? 0.5 : 2;
      return { pass: r <= 1, ratio: r };
    };
    const o = await searchMaxLoad(probe, CONC);
    expect(o.end).toBe("drifted");
    expect(o.drift).toMatchObject({ load: 8, first: { pass: true, ratio: 0.6 }, repeat: { pass: false, ratio: 1.4 } });
    expect(o.drift!.reason).toContain("first probe (#");
    expect(o.drift!.reason).toContain("met the SLO with worst ratio 0.60");
    expect(o.drift!.reason).toContain("missed it with 1.40: 57% apart");
    expect(o.maxPassing).toBeUndefined();
  });

  it("both passed but the figure moved beyond the tolerance: drift all the same", async () => {
    const seen = new Map<number, number>();
    const probe: Probe = async (load) => {
      const n = (seen.get(load) ?? 0) + 1;
      seen.set(load, n);
      const r = load === 8 ? (n === 1 ? 0.5 : 0.9) : load < 8 ? 0.3 : 3;
      return { pass: r <= 1, ratio: r };
    };
    const o = await searchMaxLoad(probe, CONC);
    expect(o.end).toBe("drifted");
    expect(o.drift).toMatchObject({ load: 8, first: { pass: true }, repeat: { pass: true } });
    expect(o.drift!.difference).toBeCloseTo(0.4 / 0.9, 9);
  });

  it("the tolerance is a setting: the same sequence converges under a looser one", async () => {
    const make = () => {
      const seen = new Map<number, number>();
      const probe: Probe = async (load) => {
        const n = (seen.get(load) ?? 0) + 1;
        seen.set(load, n);
        const r = load === 8 ? (n === 1 ? 0.5 : 0.9) : load < 8 ? 0.3 : 3;
        return { pass: r <= 1, ratio: r };
      };
      return probe;
    };
    expect((await searchMaxLoad(make(), CONC)).end).toBe("drifted");
    const loose = await searchMaxLoad(make(), { ...CONC, driftTolerance: 0.5 });
    expect(loose.end).toBe("converged");
    expect(loose.drift).toBeUndefined();
    expect(loose.maxPassing).toBe(8);
    expect(loose.confirmed).toBe(true);
  });

  it("a stationary server with ±5% noise per probe never reads as drift", async () => {
    const rng = createRng(11);
    for (const b of [3, 5, 8, 12, 20, 37, 64, 100]) {
      const probe = sequence((load) => (load / b) ** 2 * (0.95 + 0.1 * rng.next()));
      const o = await searchMaxLoad(probe, CONC);
      expect(o.end, `b=${b}`).not.toBe("drifted");
      expect(o.drift).toBeUndefined();
      expect(o.maxPassing).toBeDefined();
    }
  });

  it("relative difference of two worst ratios", () => {
    expect(ratioDifference(1, 1)).toBe(0);
    expect(ratioDifference(0, 0)).toBe(0);
    expect(ratioDifference(0.5, 1)).toBe(0.5);
    expect(ratioDifference(1, 0.5)).toBe(0.5);
    expect(ratioDifference(0, 0.2)).toBe(1);
    expect(ratioDifference(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY)).toBe(0);
    expect(ratioDifference(0.9, Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
  });
});
