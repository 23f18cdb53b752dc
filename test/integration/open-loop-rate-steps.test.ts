import { afterEach, describe, expect, it } from "vitest";
import { StreamClient } from "../../src/client/stream-client.js";
import { maxLoadTestSchema, rampTestSchema, requestSchema } from "../../src/config/suite-schema.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import { renderLoadSections } from "../../src/report/load-report.js";
import type { TestContext } from "../../src/suite/context.js";
import type { StepDigest } from "../../src/suite/load-common.js";
import { runMaxLoadTest, type SearchOutcome } from "../../src/suite/max-load.js";
import { runRampTest } from "../../src/suite/ramp.js";
import { createRng } from "../../src/util/rng.js";
import { type StallServer, startFaultInjectingStallServer } from "../helpers/fault-injecting-stall-server.js";

/**
 * Rate steps (open loop) over real HTTP against a fault-injecting server with a fixed capacity: one slot, each response
 * 4 events 10 ms apart, so at most ~25 responses per second. Below that the schedule is kept; above it requests pile
 * up in the server and latencies from the intended start grow through the step.
 */
let server: StallServer | undefined;
let client: StreamClient | undefined;

afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
});

async function context(name: string): Promise<TestContext> {
  server = await startFaultInjectingStallServer({ slots: 1, tokens: 4, tokenIntervalMs: 10 });
  client = new StreamClient(server.endpoint, { stallTimeoutMs: 30_000 });
  return {
    testName: name,
    endpoint: server.endpoint,
    client,
    sink: new RecordSink(),
    request: requestSchema.parse({ maxTokens: 4 }),
    rng: createRng(3),
    signal: new AbortController().signal,
  };
}

const steps = { stepDurationS: 1.5, stepWarmupS: 0.3, drainTimeoutS: 3, arrivals: "constant" };

describe("open-loop rate steps against a server with a fixed capacity", () => {
  it("ramp by rate: schedule and corrected latencies per step; past capacity the backlog trend stops the ramp", async () => {
    const test = rampTestSchema.parse({
      kind: "ramp",
      variable: "rate",
      ...steps,
      steps: [5, 10, 60, 120],
      slo: { e2eMs: 400, percentile: 95, maxErrorRate: 0.05 },
      stopOnSloBreach: false,
    });
    const result = await runRampTest(await context("rate-ramp"), test, 1);
    const digests = result.extra!.steps as StepDigest[];
    expect(digests.map((d) => d.label).slice(0, 3)).toEqual(["rate_5", "rate_10", "rate_60"]);
    const [slow, , over] = digests as [StepDigest, StepDigest, StepDigest];
    expect(slow.schedule!.requestedRatePerS).toBe(5);
    // one every 200 ms from 0: those in the measured window [0.3 s, 1.8 s) are at 0.4, 0.6, ..., 1.6 s
    expect(slow.schedule!.arrivals).toBe(7);
    expect(slow.slo!.pass).toBe(true);
    expect(slow.e2eCorrectedMs!.p95).toBeLessThan(400);
    // 60/s into a server that completes ~25/s: the backlog grows through the step (within-step saturation), the
    // latency from the intended start with it, and the ramp stops there.
    expect(over.saturation!.saturated).toBe(true);
    expect(over.slo!.pass).toBe(false);
    expect(over.e2eCorrectedMs!.p95).toBeGreaterThan(slow.e2eCorrectedMs!.p95 * 3);
    expect(over.inFlight.max).toBeGreaterThan(5);
    expect((result.extra!.stoppedEarly as Array<{ kind: string; afterStep: string }>)[0]).toMatchObject({
      kind: "saturation",
      afterStep: "rate_60",
    });
    expect(digests).toHaveLength(3);
    expect(result.scenarios.map((s) => s.params.rate)).toEqual([5, 10, 60]);
    expect(result.metrics.max_sustainable_rps!.summary.mean).toBe(10);
    const md = renderLoadSections(result).join("\n");
    expect(md).toContain('x-axis "arrival rate (req/s)"');
    expect(md).toContain("e2e corr. p95");
  });

  it("max-load by rate: a boundary below the server's capacity, with the SLO flipping across it", async () => {
    const test = maxLoadTestSchema.parse({
      kind: "max-load",
      variable: "rate",
      ...steps,
      start: 4,
      max: 64,
      tolerance: 0.25,
      slo: { e2eMs: 400, percentile: 95, maxErrorRate: 0.05 },
    });
    const result = await runMaxLoadTest(await context("rate-search"), test, 1);
    const search = (result.extra!.searches as SearchOutcome[])[0]!;
    expect(search.maxPassing).toBeDefined();
    expect(search.minFailing).toBeDefined();
    // ~25 responses/s is all the server can do: no rate above it is sustainable.
    expect(search.maxPassing!).toBeLessThan(30);
    expect(search.minFailing! / search.maxPassing!).toBeLessThanOrEqual(1.25 + 1e-9);
    const digests = result.extra!.steps as StepDigest[];
    const failing = digests.find((d) => d.load === search.minFailing && !d.slo!.pass)!;
    expect(failing.slo!.reason).toMatch(/^missed: /);
    expect(result.metrics.max_sustainable_rps!.summary.mean).toBe(search.maxPassing);
  });
});
