import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { nowNs } from "../../src/measure/clock.js";
import type { RequestRecord } from "../../src/measure/record.js";
import { createRng } from "../../src/util/rng.js";
import { createArrivals } from "../../src/workload/schedulers/arrivals.js";
import { runClosedLoop } from "../../src/workload/schedulers/closed-loop.js";
import { runOpenLoop } from "../../src/workload/schedulers/open-loop.js";
import { Pacer } from "../../src/workload/schedulers/pacer.js";
import type { Job, SendFn } from "../../src/workload/schedulers/types.js";

/**
 * The loops' own mechanics (bounds, warm-up, concurrency, stop vs interrupt), driven through their SendFn interface by
 * a sender that takes `serviceMs` and honours cancellation like StreamClient does. Real servers are in
 * test/integration/open-loop*.test.ts. Nothing here asserts speed beyond generous termination bounds.
 */
function timedSender(serviceMs: (job: Job<string>) => number) {
  let inFlight = 0;
  let peak = 0;
  const jobs: Job<string>[] = [];
  const send: SendFn<string> = async (job, signal) => {
    jobs.push(job);
    inFlight++;
    peak = Math.max(peak, inFlight);
    const startNs = nowNs();
    let cancelled = false;
    try {
      await sleep(serviceMs(job), undefined, { signal });
    } catch {
      cancelled = true;
    }
    inFlight--;
    const rec: RequestRecord = {
      id: jobs.length,
      test: "t",
      scenario: job.task,
      api: "openai-chat",
      trial: 0,
      intendedStartNs: job.intendedStartNs ?? startNs,
      startNs,
      endNs: nowNs(),
      contentEventNs: [],
      measured: job.measured,
      promptTokensSource: "none",
      outputTokensSource: "none",
      requestedOutputTokens: 1,
      status: cancelled ? 0 : 200,
      ok: !cancelled,
      ...(cancelled ? { errorClass: "cancelled" as const } : {}),
    };
    return rec;
  };
  return { send, jobs, peak: () => peak };
}

const never = new AbortController().signal;

describe("closed loop", () => {
  it("N users, iterations per user, count-based warm-up at the same concurrency", async () => {
    const s = timedSender(() => 5);
    const out = await runClosedLoop({
      users: 4,
      iterations: 5,
      warmupRequests: 4,
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: never,
    });
    expect(out.records).toHaveLength(20);
    expect(out.records.filter((r) => !r.measured)).toHaveLength(4);
    expect(s.peak()).toBe(4);
    expect(out.maxInFlight).toBe(4);
    expect(out.stoppedBy).toBe("iterations");
    expect(new Set(s.jobs.map((j) => j.user))).toEqual(new Set([0, 1, 2, 3]));
    expect(out.windowNs).toBeGreaterThan(0);
  });

  it("keepRecords: false hands every record to onRecord and keeps none (a soak holds nothing per request)", async () => {
    const s = timedSender(() => 1);
    const seen: RequestRecord[] = [];
    const out = await runClosedLoop({
      users: 3,
      iterations: 4,
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: never,
      keepRecords: false,
      onRecord: (r) => seen.push(r),
    });
    expect(seen).toHaveLength(12);
    expect(out.records).toEqual([]);
    expect(out.stoppedBy).toBe("iterations");
  });

  it("a duration bound stops starting requests; in-flight ones finish (graceful, not cancelled)", async () => {
    const s = timedSender(() => 40);
    const t0 = Date.now();
    const out = await runClosedLoop({
      users: 3,
      durationMs: 150,
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: never,
    });
    expect(out.stoppedBy).toBe("duration");
    expect(out.drain.inFlightAtStop).toBeGreaterThan(0);
    expect(out.drain.cancelledAtDrain).toBe(0);
    expect(out.records.every((r) => r.ok)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("the drain is bounded: requests still running at the drain timeout are cancelled", async () => {
    const s = timedSender(() => 60_000);
    const t0 = Date.now();
    const out = await runClosedLoop({
      users: 2,
      durationMs: 50,
      drainTimeoutMs: 100,
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: never,
    });
    expect(out.drain.inFlightAtStop).toBe(2);
    expect(out.drain.cancelledAtDrain).toBe(2);
    expect(out.records.every((r) => r.errorClass === "cancelled")).toBe(true);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("an interrupt cancels in-flight requests at once, with its reason", async () => {
    const s = timedSender(() => 60_000);
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error("server died")), 50);
    const out = await runClosedLoop({
      users: 3,
      durationMs: 60_000,
      drainTimeoutMs: 60_000,
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: ctl.signal,
    });
    expect(out.stoppedBy).toBe("interrupted");
    expect(out.interruptReason).toBe("server died");
    expect(out.records).toHaveLength(3);
    expect(out.records.every((r) => r.errorClass === "cancelled")).toBe(true);
    expect(out.drain.drainMs).toBeLessThan(5000);
  });

  it("a graceful stop signal ends think time at once and drains", async () => {
    const s = timedSender(() => 5);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    const out = await runClosedLoop({
      users: 2,
      durationMs: 60_000,
      thinkTime: { kind: "constant", seconds: 30 },
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: never,
      stopSignal: stop.signal,
    });
    expect(out.stoppedBy).toBe("stopped");
    expect(out.records).toHaveLength(2);
    expect(out.drain.drainMs).toBeLessThan(5000);
  });

  it("user ramp-up: users start spawnRate per second", async () => {
    const s = timedSender(() => 1);
    const out = await runClosedLoop({
      users: 3,
      spawnRatePerS: 20,
      iterations: 1,
      pick: () => "a",
      rng: createRng(1),
      send: s.send,
      signal: never,
    });
    const starts = [...out.records].sort((a, b) => a.startNs - b.startNs).map((r) => r.startNs);
    // user 2 starts 100 ms after user 0 (timers fire late, never early)
    expect((starts[2]! - starts[0]!) / 1e6).toBeGreaterThanOrEqual(99);
  });

  it("refuses a loop that could never end", async () => {
    await expect(
      runClosedLoop({ users: 1, pick: () => "a", rng: createRng(1), send: timedSender(() => 1).send, signal: never }),
    ).rejects.toThrow(RangeError);
  });
});

describe("open loop", () => {
  it("a count bound sends exactly that many measured arrivals, each with its intended start", async () => {
    const s = timedSender(() => 2);
    const out = await runOpenLoop({
      arrivals: createArrivals({ pattern: "constant", ratePerS: 500 }, createRng(1)),
      requests: 50,
      warmupRequests: 10,
      pick: () => "a",
      send: s.send,
      signal: never,
    });
    expect(out.stoppedBy).toBe("requests");
    expect(out.records.filter((r) => r.measured)).toHaveLength(50);
    expect(out.records.filter((r) => !r.measured)).toHaveLength(10);
    expect(out.schedule).toMatchObject({ arrivals: 50, sent: 50, dropped: 0, unsent: 0, warmupArrivals: 10 });
    const intended = s.jobs.map((j) => j.intendedStartNs!);
    // Intended starts are exactly 2 ms apart (constant arrivals), whatever the wake-ups did.
    for (let i = 1; i < intended.length; i++) expect(intended[i]! - intended[i - 1]!).toBeCloseTo(2e6, 0);
    // Nobody starts early.
    for (const r of out.records) expect(r.startNs).toBeGreaterThanOrEqual(r.intendedStartNs);
    // The window is the schedule's: 50 gaps of 2 ms.
    expect(out.windowNs / 1e6).toBeCloseTo(100, 0);
  });

  it("a full cap drops arrivals and counts them (whenFull: drop)", async () => {
    const s = timedSender(() => 200);
    const out = await runOpenLoop({
      arrivals: createArrivals({ pattern: "constant", ratePerS: 100 }, createRng(1)),
      requests: 20,
      maxConcurrency: 2,
      whenFull: "drop",
      pick: () => "a",
      send: s.send,
      signal: never,
    });
    expect(s.peak()).toBe(2);
    expect(out.schedule.sent + out.schedule.dropped).toBe(20);
    expect(out.schedule.dropped).toBeGreaterThan(10);
  });

  it("a full cap queues arrivals (whenFull: queue): they start late and their lag shows it", async () => {
    const s = timedSender(() => 50);
    const out = await runOpenLoop({
      arrivals: createArrivals({ pattern: "constant", ratePerS: 100 }, createRng(1)),
      requests: 10,
      maxConcurrency: 1,
      pick: () => "a",
      send: s.send,
      signal: never,
    });
    expect(s.peak()).toBe(1);
    expect(out.schedule.sent).toBe(10);
    const lagsMs = out.records.map((r) => (r.startNs - r.intendedStartNs) / 1e6).sort((a, b) => a - b);
    // the last one waited for nine 50 ms services minus its 90 ms offset
    expect(lagsMs.at(-1)!).toBeGreaterThan(300);
  });

  it("queued arrivals never sent by the end of the schedule are counted as unsent", async () => {
    const s = timedSender(() => 60_000);
    const out = await runOpenLoop({
      arrivals: createArrivals({ pattern: "constant", ratePerS: 100 }, createRng(1)),
      durationMs: 100,
      maxConcurrency: 1,
      drainTimeoutMs: 50,
      pick: () => "a",
      send: s.send,
      signal: never,
    });
    expect(out.stoppedBy).toBe("duration");
    expect(out.schedule.sent).toBe(1);
    expect(out.schedule.unsent).toBe(out.schedule.arrivals - 1);
    expect(out.drain.cancelledAtDrain).toBe(1);
  });

  it("an interrupt cancels in-flight requests and stops the schedule", async () => {
    const s = timedSender(() => 60_000);
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error("interrupted by the user")), 80);
    const out = await runOpenLoop({
      arrivals: createArrivals({ pattern: "poisson", ratePerS: 100 }, createRng(3)),
      durationMs: 60_000,
      drainTimeoutMs: 60_000,
      pick: () => "a",
      send: s.send,
      signal: ctl.signal,
    });
    expect(out.stoppedBy).toBe("interrupted");
    expect(out.interruptReason).toBe("interrupted by the user");
    expect(out.records.length).toBeGreaterThan(0);
    expect(out.records.every((r) => r.errorClass === "cancelled")).toBe(true);
  });
});

describe("pacer", () => {
  it("never wakes before the target; an abort wakes it at once", async () => {
    const p = new Pacer();
    for (const aheadMs of [0.3, 2, 7]) {
      const target = nowNs() + aheadMs * 1e6;
      await p.until(target);
      expect(nowNs()).toBeGreaterThanOrEqual(target);
    }
    expect(p.stats.spinNs).toBeGreaterThan(0);
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 20);
    const t0 = Date.now();
    await p.until(nowNs() + 60_000 * 1e6, ctl.signal);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
