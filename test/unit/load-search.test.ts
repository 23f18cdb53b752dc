import { describe, expect, it } from "vitest";
import {
  type Probe,
  precisionAt,
  type SearchSettings,
  searchMaxLoad,
  splitPoint,
  verdictOf,
} from "../../src/suite/max-load.js";

/** Latency / bound as a function of load for a server whose boundary is b: shapes real servers show. */
const CURVES: Record<string, (load: number, b: number) => number> = {
  // latency grows in proportion to load (a server with no batching)
  linear: (l, b) => l / b,
  // flat while batching absorbs the load, then steep
  hockey: (l, b) => Math.max(0.2, (l / b) ** 3),
  // a queue: 1/(1 - utilisation)
  queue: (l, b) => 0.15 / Math.max(0.01, 1 - (0.85 * l) / b),
  // no warning at all: fine, then broken (the margin says nothing)
  cliff: (l, b) => (l <= b ? 0.5 : 3),
};

function server(curve: (l: number, b: number) => number, b: number): Probe & { calls: number[] } {
  const calls: number[] = [];
  const probe = async (load: number) => {
    calls.push(load);
    const ratio = curve(load, b);
    return { pass: ratio <= 1, ratio };
  };
  return Object.assign(probe, { calls });
}

const CONC: SearchSettings = { start: 1, max: 256, integer: true, tolerance: 0.1, confirm: true, maxProbes: 30 };
const RATE: SearchSettings = { ...CONC, integer: false };

describe("max sustainable load search (doubling, bisection, repeat)", () => {
  for (const [name, curve] of Object.entries(CURVES)) {
    it(`${name} curve: brackets the boundary to the tolerance, for concurrency and rates`, async () => {
      for (const b of [1, 2, 3, 5, 8, 12, 20, 37, 64, 100, 200]) {
        const o = await searchMaxLoad(server(curve, b), CONC);
        expect(o.maxPassing, `b=${b}`).toBeLessThanOrEqual(b);
        expect(o.minFailing, `b=${b}`).toBeGreaterThan(b);
        expect(o.minFailing! - o.maxPassing!).toBeLessThanOrEqual(precisionAt(CONC, o.maxPassing!));
        expect(o.confirmed).toBe(true);
        expect(o.end).toBe("converged");
        expect(o.probes.at(-1)).toMatchObject({ phase: "confirm", load: o.maxPassing, pass: true });
      }
      for (const b of [0.7, 3.3, 7.3, 15, 42, 130]) {
        const o = await searchMaxLoad(server(curve, b), RATE);
        expect(o.maxPassing!).toBeLessThanOrEqual(b);
        expect(o.minFailing!).toBeGreaterThan(b);
        expect(o.minFailing! - o.maxPassing!).toBeLessThanOrEqual(0.1 * o.maxPassing! + 1e-9);
      }
    });
  }

  it("needs fewer probes than a linear sweep to the same precision (repeat included)", async () => {
    let search = 0;
    let linear = 0;
    for (const curve of Object.values(CURVES)) {
      for (const b of [5, 8, 12, 20, 37, 64, 100, 200]) {
        const o = await searchMaxLoad(server(curve, b), CONC);
        search += o.probes.length;
        linear += o.linearSweepProbes;
      }
      for (const b of [3.3, 7.3, 15, 42, 130]) {
        const o = await searchMaxLoad(server(curve, b), RATE);
        search += o.probes.length;
        linear += o.linearSweepProbes;
        // Rates have no whole-user floor on precision: the search wins at every boundary here.
        expect(o.probes.length).toBeLessThan(o.linearSweepProbes);
      }
    }
    expect(search).toBeLessThan(linear);
  });

  it("a typical server (boundary 37 users, queueing curve): under 10 probes, fewer than the sweep's", async () => {
    const s = server(CURVES.queue!, 37);
    const o = await searchMaxLoad(s, CONC);
    expect(o.probes.length).toBeLessThan(10);
    expect(o.probes.length).toBeLessThan(o.linearSweepProbes);
    expect(o.probes.map((p) => p.phase)).toEqual(expect.arrayContaining(["double", "bisect", "confirm"]));
    expect(s.calls).toEqual(o.probes.map((p) => p.load));
  });

  it("a repeat that fails within the drift tolerance moves the boundary down (one lucky step cannot set it)", async () => {
    // 12 passes the first time only (ratio 0.97, then 1.03: noise at the boundary, not drift); the real boundary is 10.
    const seen = new Map<number, number>();
    const probe: Probe = async (load) => {
      const n = (seen.get(load) ?? 0) + 1;
      seen.set(load, n);
      const pass = load <= 10 || (load === 12 && n === 1);
      return { pass, ratio: pass ? 0.97 : 1.03 };
    };
    const o = await searchMaxLoad(probe, { ...CONC, start: 3 });
    expect(o.maxPassing).toBe(10);
    expect(o.minFailing).toBeLessThanOrEqual(12);
    expect(o.confirmed).toBe(true);
    expect(o.drift).toBeUndefined();
    const confirms = o.probes.filter((p) => p.phase === "confirm");
    expect(confirms[0]).toMatchObject({ load: 12, pass: false });
    expect(confirms.at(-1)).toMatchObject({ load: 10, pass: true });
  });

  it("start already failing: halves down; nothing passing: says so", async () => {
    const o = await searchMaxLoad(server(CURVES.linear!, 3), { ...CONC, start: 16 });
    expect(o.probes.filter((p) => p.phase === "halve").length).toBeGreaterThan(0);
    expect(o.maxPassing).toBe(3);
    const none = await searchMaxLoad(async () => ({ pass: false, ratio: 5 }), CONC);
    expect(none.end).toBe("none-passed");
    expect(none.maxPassing).toBeUndefined();
    expect(none.linearSweepProbes).toBe(1);
  });

  it("everything up to max passes: the boundary is at least max", async () => {
    const o = await searchMaxLoad(server(CURVES.linear!, 1000), { ...CONC, max: 40 });
    expect(o.end).toBe("all-passed");
    expect(o.maxPassing).toBe(40);
    expect(o.minFailing).toBeUndefined();
  });

  it("stops at maxProbes and when a probe reports an interrupt", async () => {
    const capped = await searchMaxLoad(server(CURVES.linear!, 100), { ...CONC, maxProbes: 4 });
    expect(capped.probes.length).toBe(4);
    expect(capped.end).toBe("max-probes");
    let n = 0;
    const interrupted = await searchMaxLoad(async () => (++n > 2 ? undefined : { pass: true, ratio: 0.1 }), CONC);
    expect(interrupted.end).toBe("aborted");
    expect(interrupted.probes.length).toBe(2);
  });

  it("splits brackets at the geometric midpoint, strictly inside", () => {
    expect(splitPoint(8, 32, CONC)).toBe(16);
    expect(splitPoint(10, 12, CONC)).toBe(11);
    expect(splitPoint(4, 16, RATE)).toBe(8);
    const x = splitPoint(10, 11, RATE);
    expect(x).toBeGreaterThan(10);
    expect(x).toBeLessThan(11);
  });

  it("reads a step's SLO outcome as a pass and its worst ratio", () => {
    const v = verdictOf({
      pass: false,
      reason: "",
      checks: [
        { what: "error rate", value: 0.02, bound: 0.01, pass: false },
        { what: "e2e p95", value: 500, bound: 1000, pass: true },
      ],
    });
    expect(v).toEqual({ pass: false, ratio: 2 });
    expect(verdictOf(undefined).pass).toBe(false);
    expect(
      verdictOf({ pass: false, reason: "", checks: [{ what: "e2e p95", value: Number.NaN, bound: 1, pass: false }] })
        .ratio,
    ).toBe(Number.POSITIVE_INFINITY);
  });
});
