import { describe, expect, it } from "vitest";
import type { Slo } from "../../src/config/suite-schema.js";
import { computeMetrics, requestValues } from "../../src/measure/metrics.js";
import type { RequestRecord } from "../../src/measure/record.js";
import { judgeSelfCheck, mergeSelfChecks } from "../../src/measure/self-check.js";
import {
  evaluateSlo,
  goodputRps,
  inFlightStats,
  meetsSlo,
  stepSaturation,
  trend,
  withinStepSaturation,
} from "../../src/suite/load-common.js";
import { rampLoads } from "../../src/suite/ramp.js";

const MS = 1e6;

/** A successful request: sent at `start` (ms), first token after `ttft`, ended after `e2e`, 10 tokens. */
function rec(startMs: number, ttftMs: number, e2eMs: number, over: Partial<RequestRecord> = {}): RequestRecord {
  const s = startMs * MS;
  return {
    id: 0,
    test: "t",
    scenario: "s",
    api: "openai-chat",
    trial: 0,
    intendedStartNs: s,
    startNs: s,
    firstTokenNs: s + ttftMs * MS,
    endNs: s + e2eMs * MS,
    contentEventNs: [s + ttftMs * MS, s + e2eMs * MS],
    measured: true,
    outputTokens: 10,
    outputTokensSource: "usage",
    promptTokensSource: "none",
    requestedOutputTokens: 10,
    status: 200,
    ok: true,
    ...over,
  };
}

const failed = (startMs: number) => rec(startMs, 0, 5, { ok: false, errorClass: "http", status: 500 });

const SLO: Slo = { e2eMs: 1000, percentile: 95, maxErrorRate: 0.01 };

describe("open-loop metrics: schedule lag and corrected latencies", () => {
  it("are measured from the intended start, and only for open-loop records", () => {
    const r = rec(100, 20, 200, { intendedStartNs: 40 * MS, openLoop: true });
    const v = requestValues(r);
    expect(v.schedule_lag_ms).toBeCloseTo(60);
    expect(v.e2e_ms).toBeCloseTo(200);
    expect(v.e2e_corrected_ms).toBeCloseTo(260);
    expect(v.ttft_ms).toBeCloseTo(20);
    expect(v.ttft_corrected_ms).toBeCloseTo(80);
    const closed = requestValues(rec(100, 20, 200));
    expect(closed.schedule_lag_ms).toBeUndefined();
    expect(closed.e2e_corrected_ms).toBeUndefined();
  });

  it("a failed open-loop request still has a schedule lag (the client's), but no latency", () => {
    const v = requestValues({ ...failed(100), intendedStartNs: 90 * MS, openLoop: true });
    expect(v).toEqual({ schedule_lag_ms: 10 });
  });

  it("coordinated omission: requests queued behind a stall look fast raw, slow corrected", () => {
    // 100 arrivals 10 ms apart; a 1 s stall at arrival 10 holds the only slot, so arrivals 11..110 start late.
    const recs: RequestRecord[] = [];
    let freeAt = 0;
    for (let i = 0; i < 100; i++) {
      const intended = i * 10;
      const start = Math.max(intended, freeAt);
      const service = i === 10 ? 1000 : 5;
      recs.push(rec(start, 2, service, { intendedStartNs: intended * MS, openLoop: true }));
      freeAt = start + service;
    }
    const m = computeMetrics([{ records: recs }]);
    expect(m.e2e_ms!.summary.p50).toBeLessThan(10);
    expect(m.e2e_ms!.summary.p90).toBeLessThan(10);
    expect(m.e2e_corrected_ms!.summary.p50).toBeGreaterThan(200);
    expect(m.e2e_corrected_ms!.summary.p99).toBeGreaterThan(900);
    expect(m.schedule_lag_ms!.summary.p90).toBeGreaterThan(500);
  });
});

describe("SLO and goodput", () => {
  it("a request is good when it succeeded and met every bound", () => {
    expect(meetsSlo(rec(0, 10, 900), SLO)).toBe(true);
    expect(meetsSlo(rec(0, 10, 1100), SLO)).toBe(false);
    expect(meetsSlo(failed(0), SLO)).toBe(false);
    expect(meetsSlo(rec(0, 300, 900), { ...SLO, ttftMs: 200 })).toBe(false);
    // tpot = (900 - 10) / 9 = 98.9 ms
    expect(meetsSlo(rec(0, 10, 900), { ...SLO, tpotMs: 50 })).toBe(false);
    expect(meetsSlo(rec(0, 10, 900), { ...SLO, tpotMs: 100 })).toBe(true);
    // open loop: judged from the intended start
    expect(meetsSlo(rec(500, 10, 900, { intendedStartNs: 0, openLoop: true }), SLO)).toBe(false);
  });

  it("a step passes on the percentile and the error rate; says which bound it missed", () => {
    const fast = Array.from({ length: 100 }, (_, i) => rec(i, 10, 500));
    expect(evaluateSlo(fast, SLO)).toMatchObject({ pass: true });
    const slowTail = [...fast.slice(0, 90), ...Array.from({ length: 10 }, (_, i) => rec(i, 10, 1500))];
    const s = evaluateSlo(slowTail, SLO);
    expect(s.pass).toBe(false);
    expect(s.reason).toMatch(/e2e p95 1500 ms \(≤ 1000 ms\)/);
    const errors = [...fast.slice(0, 98), failed(1), failed(2)];
    const e = evaluateSlo(errors, SLO);
    expect(e.pass).toBe(false);
    expect(e.reason).toMatch(/error rate 2\.0%/);
    // arrivals the open loop dropped or never sent count as errors
    expect(evaluateSlo(fast, SLO, 5).pass).toBe(false);
    expect(evaluateSlo([failed(0)], SLO).reason).toBe("no request succeeded");
  });

  it("goodput: good requests per second of the window", () => {
    const recs = [rec(0, 10, 500), rec(0, 10, 2000), failed(0), rec(0, 10, 800)];
    expect(goodputRps(recs, SLO, 2e9)).toBe(1);
    expect(goodputRps(recs, SLO, 0)).toBe(0);
  });
});

describe("in flight and saturation", () => {
  it("in-flight mean by Little's law, peak by sweep", () => {
    // two overlapping 100 ms requests in a 200 ms window
    const r = [rec(0, 1, 100), rec(50, 1, 100)];
    const s = inFlightStats(r, 0, 200 * MS);
    expect(s.mean).toBeCloseTo(1);
    expect(s.max).toBe(2);
  });

  it("trend: slope and t statistic of a clean and a flat line", () => {
    const up = trend(Array.from({ length: 20 }, (_, i) => [i, 2 * i + (i % 2 ? 0.1 : -0.1)] as const));
    expect(up.slope).toBeCloseTo(2, 1);
    expect(up.t).toBeGreaterThan(50);
    const flat = trend(Array.from({ length: 20 }, (_, i) => [i, i % 2 ? 1 : -1] as const));
    expect(Math.abs(flat.t)).toBeLessThan(1);
  });

  it("within a step: outstanding requests and latency both rising = the server falls behind", () => {
    // arrivals every 100 ms; service takes 150 ms each, one at a time: the backlog grows linearly
    const behind: RequestRecord[] = [];
    let freeAt = 0;
    for (let i = 0; i < 60; i++) {
      const intended = i * 100;
      const start = Math.max(intended, freeAt);
      freeAt = start + 150;
      behind.push(rec(intended, freeAt - intended, freeAt - intended, { openLoop: true }));
    }
    expect(withinStepSaturation(behind).saturated).toBe(true);
    const keepingUp = Array.from({ length: 60 }, (_, i) => rec(i * 100, 40, 50, { openLoop: true }));
    expect(withinStepSaturation(keepingUp).saturated).toBe(false);
  });

  it("across steps: double the load, same throughput, longer latency = saturated", () => {
    const prev = { load: 4, requestsPerS: 10, e2eP50Ms: 400, inFlightMean: 4 };
    expect(stepSaturation(prev, { load: 8, requestsPerS: 10.3, e2eP50Ms: 780, inFlightMean: 8 }).saturated).toBe(true);
    expect(stepSaturation(prev, { load: 8, requestsPerS: 18, e2eP50Ms: 440, inFlightMean: 8 }).saturated).toBe(false);
    expect(stepSaturation(prev, { load: 4, requestsPerS: 10, e2eP50Ms: 400, inFlightMean: 4 }).saturated).toBe(false);
  });
});

describe("ramp loads and the client self-check verdict", () => {
  it("steps, the seed's range(step, max + 1, step), or the default", () => {
    expect(rampLoads({ steps: [1, 3] })).toEqual([1, 3]);
    expect(rampLoads({ range: { start: 5, stop: 50, step: 5 } })).toEqual([5, 10, 15, 20, 25, 30, 35, 40, 45, 50]);
    expect(rampLoads({ range: { start: 0.1, stop: 0.3, step: 0.1 } })).toEqual([0.1, 0.2, 0.3]);
    expect(rampLoads({})).toEqual([1, 2, 4, 8]);
  });

  const calm = { mean: 0.2, p50: 0.1, p99: 2, max: 5 };
  it("a late event loop or a full core is the client's bottleneck; the pacer's spin is not", () => {
    expect(judgeSelfCheck({ wallS: 10, cpuS: 2, spinS: 0, eventLoopDelayMs: calm }).clientBound).toBe(false);
    const late = judgeSelfCheck({ wallS: 10, cpuS: 2, spinS: 0, eventLoopDelayMs: { ...calm, p99: 45 } });
    expect(late.clientBound).toBe(true);
    expect(late.reasons[0]).toMatch(
      /event loop ran up to 45\.0 ms late .* while using 20% of a core: the machine was busy/,
    );
    const lateBusy = judgeSelfCheck({ wallS: 10, cpuS: 7, spinS: 0, eventLoopDelayMs: { ...calm, p99: 45 } });
    expect(lateBusy.reasons[0]).toMatch(/its own work delayed/);
    const busy = judgeSelfCheck({ wallS: 10, cpuS: 9.8, spinS: 0, eventLoopDelayMs: calm });
    expect(busy.clientBound).toBe(true);
    expect(busy.reasons[0]).toMatch(/98% of a CPU core/);
    const spinning = judgeSelfCheck({ wallS: 10, cpuS: 9.8, spinS: 8, eventLoopDelayMs: calm });
    expect(spinning.clientBound).toBe(false);
    expect(spinning.cpuCoreFraction).toBeCloseTo(0.98);
  });

  it("merged over steps: one client-bound step is reported", () => {
    const ok = judgeSelfCheck({ wallS: 10, cpuS: 1, spinS: 0, eventLoopDelayMs: calm });
    const bad = judgeSelfCheck({ wallS: 10, cpuS: 1, spinS: 0, eventLoopDelayMs: { ...calm, p99: 60 } });
    const m = mergeSelfChecks([ok, ok, bad])!;
    expect(m.clientBound).toBe(true);
    expect(m.reasons.join(" ")).toMatch(/1 of 3 load steps were client-bound/);
    expect(mergeSelfChecks([ok, ok])!.clientBound).toBe(false);
    expect(mergeSelfChecks([])).toBeUndefined();
  });
});
