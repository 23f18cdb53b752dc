import { afterEach, describe, expect, it } from "vitest";
import { StreamClient } from "../../src/client/stream-client.js";
import { openLoopTestSchema, requestSchema } from "../../src/config/suite-schema.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import type { TestContext } from "../../src/suite/context.js";
import type { ScheduleDigest } from "../../src/suite/load-common.js";
import { runOpenLoopTest } from "../../src/suite/open-loop.js";
import { createRng } from "../../src/util/rng.js";
import { type StallServer, startFaultInjectingStallServer } from "../helpers/fault-injecting-stall-server.js";

/**
 * The open loop against a fault-injecting SSE server over real HTTP: coordinated omission made visible, and bounded
 * stops. Assertions compare latencies with each other and with the injected stall, never with a speed.
 */
let server: StallServer | undefined;
let client: StreamClient | undefined;

afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
});

function context(s: StallServer, signal: AbortSignal, stallTimeoutMs = 60_000): TestContext {
  client = new StreamClient(s.endpoint, { stallTimeoutMs, requestTimeoutMs: 120_000 });
  return {
    testName: "open-loop",
    endpoint: s.endpoint,
    client,
    sink: new RecordSink(),
    request: requestSchema.parse({ maxTokens: 4 }),
    rng: createRng(1),
    signal,
  };
}

type Run = { stoppedBy: string; drain: { cancelledAtDrain: number; inFlightAtStop: number }; schedule: ScheduleDigest };

describe("open loop against a server that stalls mid-stream", () => {
  it("coordinated omission: behind a concurrency cap, a 1 s stall hides in raw percentiles but not in lag or corrected ones", async () => {
    // One response in the measured window stalls for 1 s; with one request in flight at a time, the arrivals behind it
    // wait in the client's queue. Sent late, they are served fast: their raw latency looks fine.
    server = await startFaultInjectingStallServer({ stallMs: (i) => (i === 100 ? 1000 : 0) });
    const test = openLoopTestSchema.parse({
      kind: "open-loop",
      rate: 50,
      arrivals: "constant",
      durationS: 5,
      warmupS: 0.5,
      maxConcurrency: 1,
      whenFull: "queue",
      drainTimeoutS: 10,
    });
    const result = await runOpenLoopTest(context(server, new AbortController().signal), test, 1);
    const m = result.metrics;
    const run = (result.extra!.runs as Run[])[0]!;

    expect(run.stoppedBy).toBe("duration");
    expect(run.schedule.unsent).toBe(0);
    expect(result.requests.failed).toBe(0);
    const raw = m.e2e_ms!.summary;
    const corrected = m.e2e_corrected_ms!.summary;
    const lag = m.schedule_lag_ms!.summary;
    // The stall itself is one request of ~250: raw p99 does not see it.
    expect(raw.max).toBeGreaterThan(900);
    expect(raw.p99).toBeLessThan(corrected.p99 / 3);
    // The ~50 arrivals during the stall waited up to 1 s: corrected latency and lag do see it.
    expect(corrected.p99).toBeGreaterThan(600);
    expect(lag.p99).toBeGreaterThan(600);
    expect(run.schedule.lagMs.p99).toBeGreaterThan(600);
    expect(run.schedule.late).toBeGreaterThan(20);
    expect(m.ttft_corrected_ms!.summary.p99).toBeGreaterThan(m.ttft_ms!.summary.p99 * 3);
  });

  it("without a cap the open loop keeps sending on time: the stall shows in raw latency, not in lag", async () => {
    server = await startFaultInjectingStallServer({ stallMs: (i) => (i % 10 === 5 ? 700 : 0) });
    const test = openLoopTestSchema.parse({
      kind: "open-loop",
      rate: 40,
      arrivals: "poisson",
      durationS: 2,
      warmupS: 0.2,
      drainTimeoutS: 10,
    });
    const result = await runOpenLoopTest(context(server, new AbortController().signal), test, 1);
    const m = result.metrics;
    expect(m.e2e_ms!.summary.p95).toBeGreaterThan(600);
    // Lag is the client's own: far below the stalls it did not wait for.
    expect(m.schedule_lag_ms!.summary.p50).toBeLessThan(m.e2e_ms!.summary.p95 / 10);
    expect(m.e2e_corrected_ms!.summary.p95).toBeGreaterThan(600);
  });

  it("a graceful stop is bounded by the drain timeout: responses that never resume are cancelled", async () => {
    server = await startFaultInjectingStallServer({ stallMs: (i) => (i % 4 === 0 ? Number.POSITIVE_INFINITY : 0) });
    const test = openLoopTestSchema.parse({
      kind: "open-loop",
      rate: 40,
      durationS: 1,
      warmupS: 0,
      drainTimeoutS: 0.3,
    });
    const t0 = Date.now();
    const result = await runOpenLoopTest(context(server, new AbortController().signal), test, 1);
    const elapsed = Date.now() - t0;
    const run = (result.extra!.runs as Run[])[0]!;
    expect(run.stoppedBy).toBe("duration");
    expect(run.drain.cancelledAtDrain).toBeGreaterThan(0);
    expect(result.requests.errors.cancelled).toBe(run.drain.cancelledAtDrain);
    expect(result.aborted).toBeUndefined();
    // Generous bound, only to prove termination: 1 s of schedule + 0.3 s of drain.
    expect(elapsed).toBeLessThan(15_000);
  });

  it("an interrupt cancels in-flight requests at once and marks the test aborted", async () => {
    server = await startFaultInjectingStallServer({ stallMs: () => Number.POSITIVE_INFINITY });
    const stop = new AbortController();
    const test = openLoopTestSchema.parse({ kind: "open-loop", rate: 20, durationS: 600, drainTimeoutS: 600 });
    setTimeout(() => stop.abort(new Error("the server exited during the run")), 700);
    const t0 = Date.now();
    const result = await runOpenLoopTest(context(server, stop.signal), test, 1);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(result.aborted).toContain("the server exited");
    const run = (result.extra!.runs as Run[])[0]!;
    expect(run.stoppedBy).toBe("interrupted");
    expect(result.requests.succeeded).toBe(0);
  });
});
