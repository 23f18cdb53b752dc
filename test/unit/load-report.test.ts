import { describe, expect, it } from "vitest";
import type { MetricResult, TestResult } from "../../src/measure/results.js";
import { judgeSelfCheck } from "../../src/measure/self-check.js";
import { isLoadKind, renderLoadSections } from "../../src/report/load-report.js";
import type { StepDigest } from "../../src/suite/load-common.js";
import { type Probe, searchMaxLoad } from "../../src/suite/max-load.js";

const calm = judgeSelfCheck({
  wallS: 10,
  cpuS: 1,
  spinS: 0,
  eventLoopDelayMs: { mean: 0.1, p50: 0.1, p99: 1, max: 2 },
});

function q(p50: number) {
  return { count: 10, mean: p50 * 1.1, p50, p95: p50 * 1.5, p99: p50 * 2 };
}

function step(load: number, e2eP50: number, pass: boolean, phase = "ramp"): StepDigest {
  return {
    label: `concurrency_${load}`,
    variable: "concurrency",
    load,
    trial: 0,
    phase,
    windowS: 5,
    requests: { attempted: 10, succeeded: 10, failed: 0, errors: {}, shortfalls: 0 },
    requestsPerS: load,
    outputTokensPerS: load * 32,
    errorRate: 0,
    goodputRps: pass ? load : 0,
    e2eMs: q(e2eP50),
    ttftMs: q(e2eP50 / 10),
    inFlight: { mean: load, max: load },
    slo: pass
      ? { pass, checks: [], reason: "met: e2e p95 1 ms" }
      : { pass, checks: [], reason: `missed: e2e p95 ${e2eP50 * 1.5} ms (≤ 1000 ms)` },
    stoppedBy: "duration",
    drain: { inFlightAtStop: load, cancelledAtDrain: 0, drainMs: 10, drainTimeoutMs: 5000 },
    selfCheck: calm,
  };
}

function metric(v: number, unit = "ms"): MetricResult {
  const s = { count: 1, mean: v, stddev: 0, min: v, p50: v, p90: v, p95: v, p99: v, max: v };
  return { unit, better: "lower", summary: s, trials: [s] };
}

function result(kind: string, over: Partial<TestResult>): TestResult {
  return {
    name: kind,
    kind,
    params: {},
    metrics: {},
    scenarios: [],
    requests: { attempted: 0, succeeded: 0, failed: 0, errors: {}, shortfalls: 0 },
    windowS: 1,
    trials: 1,
    ...over,
  };
}

const SLO = { e2eMs: 1000, percentile: 95, maxErrorRate: 0.01 };

describe("load report sections", () => {
  it("only load kinds get them", () => {
    expect(isLoadKind("ramp")).toBe(true);
    expect(isLoadKind("latency")).toBe(false);
    expect(renderLoadSections(result("latency", {}))).toEqual([]);
  });

  it("max-load: the boundary, the probe count against a linear sweep, the evidence, a table and two charts", () => {
    const steps = [
      step(1, 100, true, "double"),
      step(4, 900, false, "double"),
      step(2, 300, true, "bisect"),
      step(3, 700, false, "bisect"),
      step(2, 320, true, "confirm"),
    ];
    const md = renderLoadSections(
      result("max-load", {
        params: { variable: "concurrency", slo: SLO },
        extra: {
          variable: "concurrency",
          steps,
          selfCheck: calm,
          searches: [
            {
              trial: 0,
              maxPassing: 2,
              minFailing: 3,
              confirmed: true,
              end: "converged",
              precision: 1,
              linearSweepProbes: 4,
              probes: steps.map((s, i) => ({
                index: i,
                load: s.load,
                phase: s.phase,
                pass: !!s.slo?.pass,
                ratio: 0.5,
                label: s.label,
              })),
            },
          ],
        },
      }),
    ).join("\n");
    expect(md).toContain("**Maximum sustainable concurrency: 2 users**; 3 users misses it. Confirmed by a repeat.");
    expect(md).toContain("SLO: e2e p95 ≤ 1000 ms, error rate ≤ 1%");
    expect(md).toContain("Found in **5 probes** (to ±1 users); a linear sweep to the same precision needs 4.");
    expect(md).toContain("1 ✅ → 4 ❌ → 2 ✅ → 3 ❌ → 2 (repeat) ✅");
    // one table row per probe; the chart's x axis sorted by load, the repeat labelled
    expect(md.match(/\| `concurrency\\_/g)).toHaveLength(5);
    expect(md).toContain('x-axis "concurrency (users)" ["1", "2", "2 #2", "3", "4"]');
    expect(md).toContain("line [150, 450, 480, 1050, 1350]");
    expect(md).toContain("line [1000, 1000, 1000, 1000, 1000]");
    expect(md).toContain("Client self-check: ✅ tokengate kept up");
  });

  it("max-load that drifted: no boundary, both probes' figures, where the search stood; resets said", async () => {
    const seen = new Map<number, number>();
    const probe: Probe = async (load) => {
      const n = (seen.get(load) ?? 0) + 1;
      seen.set(load, n);
      const r = load === 8 ? (n === 1 ? 0.6 : 1.4) : load < 8 ? 0.5 : 2;
      return { pass: r <= 1, ratio: r };
    };
    const outcome = await searchMaxLoad(probe, {
      start: 1,
      max: 64,
      integer: true,
      tolerance: 0.1,
      confirm: true,
      maxProbes: 20,
    });
    const steps = outcome.probes.map((p) => step(p.load, p.ratio * 1000, p.pass, p.phase));
    const labels = steps.map((s, i) =>
      outcome.probes.findIndex((p) => p.load === s.load) < i ? `${s.label}_repeat1` : s.label,
    );
    const { drift, ...rest } = outcome;
    const at = (i: number) => ({ ...outcome.probes[i]!, label: labels[i]!, slo: steps[i]!.slo!.reason });
    const md = renderLoadSections(
      result("max-load", {
        params: { variable: "concurrency", slo: SLO },
        extra: {
          variable: "concurrency",
          steps,
          searches: [
            {
              ...rest,
              trial: 0,
              probes: outcome.probes.map((p, i) => ({ ...p, label: labels[i]! })),
              drift: { ...drift!, first: at(drift!.first.index), repeat: at(drift!.repeat.index) },
            },
          ],
          stateReset: {
            method: "llama-server /slots: wait until every slot is idle, then erase each slot's KV cache",
            canReset: true,
            probes: steps.length,
            reset: steps.length,
            notIdle: 0,
            idleUnknown: 0,
          },
        },
      }),
    ).join("\n");
    expect(md).toContain("⚠️ **No maximum sustainable concurrency: the server's behaviour drifted during the search.**");
    expect(md).toContain(
      "At 8 users the first probe (`concurrency\\_8`) met the SLO (worst ratio 0.6; e2e p95 1 ms); " +
        "its repeat (`concurrency\\_8\\_repeat1`) missed the SLO (worst ratio 1.4; e2e p95 2100 ms \\(≤ 1000 ms\\)): " +
        "57.1% apart, beyond the 25% tolerance.",
    );
    expect(md).toContain("Before the repeat the search stood at 8–9 users; that is not a boundary.");
    expect(md).not.toContain("Maximum sustainable concurrency:");
    expect(md).not.toContain("Confirmed by a repeat");
    expect(md).toContain(
      `Server state between probes: reset before each of the ${steps.length} probes (llama\\-server /slots: wait until every slot is idle, then erase each slot's KV cache). Every probe started on an idle server.`,
    );
  });

  it("says when the server's state could not be reset, or a probe started on a busy server", () => {
    const render = (stateReset: Record<string, unknown>) =>
      renderLoadSections(
        result("ramp", {
          params: { variable: "concurrency" },
          extra: { variable: "concurrency", steps: [step(1, 100, true), step(2, 300, true)], stateReset },
        }),
      ).join("\n");
    const inProcess = render({
      method: "in-process: wait until the scheduler is idle (its sequences' KV state cannot be cleared)",
      canReset: false,
      probes: 2,
      reset: 0,
      notIdle: 0,
      idleUnknown: 0,
      firstProblem:
        "not reset: the in-process target has no API to clear the KV state its sequences keep; scheduler idle",
    });
    expect(inProcess).toContain(
      "⚠️ Server state between probes: **not reset** (the in\\-process target has no API to clear the KV state its sequences keep; scheduler idle): a probe may inherit the KV cache and queue the previous one left.",
    );
    expect(inProcess).toContain("Every probe started on an idle server.");
    const busy = render({
      method: "llama-server /slots",
      canReset: true,
      probes: 2,
      reset: 1,
      notIdle: 1,
      idleUnknown: 0,
      firstProblem:
        "still busy after 30 s of waiting for idle: 1 of 2 slots processing (GET /slots); not reset: erase failed",
    });
    expect(busy).toContain(
      "⚠️ Server state between probes: reset before only 1 of 2 probes (llama\\-server /slots); first problem (still busy after 30 s",
    );
    expect(busy).toContain("⚠️ 1 of 2 probes started while the server was still busy.");
    // Results written before resets existed render without the line.
    expect(render({})).not.toContain("Server state between probes");
  });

  it("ramp: the highest passing step and why it stopped early", () => {
    const md = renderLoadSections(
      result("ramp", {
        params: { variable: "concurrency", slo: SLO },
        metrics: { max_sustainable_concurrency: metric(2, "req") },
        extra: {
          variable: "concurrency",
          steps: [step(1, 100, true), step(2, 300, true), step(4, 900, false)],
          stoppedEarly: [
            { trial: 0, afterStep: "concurrency_4", reason: "SLO missed: e2e p95 1350 ms (≤ 1000 ms)", kind: "slo" },
          ],
        },
      }),
    ).join("\n");
    expect(md).toContain("Highest step meeting the SLO (e2e p95 ≤ 1000 ms, error rate ≤ 1%): **2 users**.");
    expect(md).toContain("Stopped early after `concurrency\\_4`: SLO missed");
    expect(md).toContain("❌ e2e p95 1350 ms");
  });

  it("open loop: the schedule, raw next to corrected latencies, and a coordinated-omission warning", () => {
    const md = renderLoadSections(
      result("open-loop", {
        metrics: {
          ttft_ms: metric(5),
          ttft_corrected_ms: metric(800),
          e2e_ms: metric(20),
          e2e_corrected_ms: metric(900),
        },
        extra: {
          runs: [
            {
              stoppedBy: "duration",
              drain: { cancelledAtDrain: 0 },
              inFlight: { mean: 1, max: 1 },
              schedule: {
                pattern: "constant",
                requestedRatePerS: 50,
                achievedRatePerS: 49.8,
                arrivals: 250,
                sent: 250,
                dropped: 0,
                unsent: 0,
                late: 60,
                lateMs: 10,
                lagMs: { p50: 0.1, p99: 850, max: 990 },
                maxConcurrency: 1,
                whenFull: "queue",
                pacerSpinS: 0.1,
              },
            },
          ],
        },
      }),
    ).join("\n");
    expect(md).toContain("constant, cap 1 (queue)");
    expect(md).toContain("| 60 (> 10 ms) |");
    expect(md).toMatch(/\| e2e\s+\|\s+20 \|\s+900 \|/);
    expect(md).toContain(
      "⚠️ Coordinated omission: e2e p99 is 900 ms from the intended start but 20 ms from the actual send",
    );
  });

  it("stress: one row per task with its expected and observed share, then all", () => {
    const sc = (name: string, weight: number, observed: number) => ({
      name,
      params: { weight, expectedShare: weight / 4, observedShare: observed, api: "openai-chat" },
      metrics: { e2e_ms: metric(100) },
      requests: { attempted: 10, succeeded: 10, failed: 0, errors: {}, shortfalls: 0 },
    });
    const md = renderLoadSections(
      result("stress", {
        params: { users: 50, spawnRate: 10, durationS: 60, thinkTimeS: [1, 3] },
        scenarios: [sc("completion", 1, 0.26), sc("chat", 3, 0.74)],
        metrics: { e2e_ms: metric(100) },
      }),
    ).join("\n");
    expect(md).toContain("50 users started at 10/s, think time between(1, 3) s, 60 s measured.");
    expect(md).toContain("| `completion` |      1 |");
    expect(md).toContain("26% (25%)");
    expect(md).toContain("74% (75%)");
    expect(md).toContain("| **all**");
  });

  it("a client-bound self-check is said plainly, with its reasons", () => {
    const bad = judgeSelfCheck({
      wallS: 10,
      cpuS: 9.9,
      spinS: 0,
      eventLoopDelayMs: { mean: 5, p50: 2, p99: 80, max: 200 },
    });
    const md = renderLoadSections(result("stress", { extra: { selfCheck: bad } })).join("\n");
    expect(md).toContain("⚠️ **the client, not the server, may have limited this test**");
    expect(md).toContain("event loop ran up to 80.0 ms late");
    expect(md).toContain("99% of a CPU core");
  });
});
