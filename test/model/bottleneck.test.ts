import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { analyzeRun } from "../../src/analysis/recommendations.js";
import { StreamClient } from "../../src/client/stream-client.js";
import { requestSchema, throughputTestSchema } from "../../src/config/suite-schema.js";
import { environmentFingerprint } from "../../src/measure/environment.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import { RESULTS_SCHEMA_VERSION, type Results } from "../../src/measure/results.js";
import { startServerSampler } from "../../src/measure/server-metrics.js";
import { runThroughputTest } from "../../src/suite/throughput.js";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import { createRng } from "../../src/util/rng.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

// The bottleneck analysis on real measurements: a real llama-server, the real throughput test, the real sampler.
// With 1 slot and 4 requests in flight the server must queue; with 4 slots it need not.

const dir = mkdtempSync(join(tmpdir(), "tokengate-bottleneck-model-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function measure(parallel: number): Promise<Results> {
  const target = createLlamaServerTarget({
    model: await tinyModel(),
    serverBin: await findLlamaServerForTests(),
    threads: 2,
    serverFlags: ["--parallel", String(parallel), "-c", String(512 * parallel)],
    logFile: join(dir, `llama-server-${parallel}.log`),
  });
  try {
    const endpoint = await target.start();
    const client = new StreamClient(endpoint);
    const sink = new RecordSink();
    const test = throughputTestSchema.parse({
      kind: "throughput",
      concurrency: 4,
      requests: 16,
      promptTokens: 64,
      warmup: 0,
    });
    const sampler = await startServerSampler(endpoint, { intervalMs: 50 });
    const result = await runThroughputTest(
      {
        testName: "throughput",
        endpoint,
        client,
        sink,
        request: requestSchema.parse({ api: "completion", maxTokens: 48 }),
        rng: createRng(1),
        signal: new AbortController().signal,
      },
      test,
      1,
    );
    const server = await sampler.stop();
    if (server) result.server = server;
    await client.close();
    return {
      schemaVersion: RESULTS_SCHEMA_VERSION,
      tool: { name: "tokengate", version: "test" },
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      suite: { name: "bottleneck", sha256: "0".repeat(64) },
      environment: await environmentFingerprint(await target.fingerprint()),
      tests: [result],
      verdict: { overall: "pass", checks: [], reason: "" },
    };
  } finally {
    await target.stop();
  }
}

describe("bottleneck analysis on a real llama-server (tiny model)", () => {
  it("1 slot, 4 requests in flight: requests wait for the slot; the advice is more --parallel", async () => {
    const results = await measure(1);
    const test = results.tests[0]!;
    expect(test.requests.failed).toBe(0);
    expect(test.server?.load?.slots).toBe(1);
    expect(test.server?.load?.deferredMax).toBeGreaterThan(0);
    const a = analyzeRun(results);
    const q = a.bottlenecks.find((b) => b.kind === "queueing");
    expect(q?.title).toBe("requests wait for a free slot");
    expect(q?.evidence.join("\n")).toMatch(/the load keeps 4 requests in flight on 1 slots/);
    expect(q?.evidence.join("\n")).toMatch(/requests_deferred > 0 in \d/);
    // Waiting dominates TTFT: three requests queue behind the one being served.
    const split = a.timeSplits[0]!;
    expect(split.queueMs!).toBeGreaterThan(split.promptMs);
    const parallel = a.recommendations.find((r) => r.knob === "parallel");
    expect(parallel?.flags).toEqual(["--parallel", "4", "-c", "2048"]);
  });

  it("4 slots for 4 requests: no slot queue, no --parallel advice", async () => {
    const results = await measure(4);
    const test = results.tests[0]!;
    expect(test.server?.load?.slots).toBe(4);
    const a = analyzeRun(results);
    expect(a.bottlenecks.find((b) => b.title === "requests wait for a free slot")).toBeUndefined();
    expect(a.recommendations.map((r) => r.knob)).not.toContain("parallel");
  });
});
