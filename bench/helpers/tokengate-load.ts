import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamClient } from "../../src/client/stream-client.js";
import { requestSchema } from "../../src/config/suite-schema.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import type { TestContext } from "../../src/suite/context.js";
import { driveClosed } from "../../src/suite/load-common.js";
import type { ApiKind } from "../../src/target/types.js";
import { createRng } from "../../src/util/rng.js";
import { type LoadTask, thinkTimeOf } from "../../src/workload/schedulers/tasks.js";

/**
 * tokengate as a load client in its own process, for the client-overhead benchmark: the real stress path
 * (src/suite/load-common.ts driveClosed: the closed-loop scheduler, weighted tasks, think time, StreamClient, one
 * NDJSON record per request written as it finishes, the client self-check), exactly as `tokengate run` drives a
 * stress test. argv[2]: the options as JSON. Prints `{"ready":true}` when it starts sending; on SIGTERM it stops
 * gracefully (stops starting requests, drains) and prints a summary line.
 */
export interface TokengateLoadOptions {
  url: string;
  users: number;
  /** Seconds: a constant, or [min, max] (locust between). */
  thinkTimeS: number | [number, number];
  tasks: Array<{ name: string; weight: number; api: ApiKind; prompt: string; maxTokens: number }>;
  /** Upper bound on the run (s); the parent normally stops it earlier with SIGTERM. */
  durationS: number;
}

const o = JSON.parse(process.argv[2] ?? "{}") as TokengateLoadOptions;
const endpoint = {
  baseUrl: o.url,
  apis: ["completion", "openai-completions", "openai-chat"] as ApiKind[],
  modelName: "bench-sse",
  bannedTokenIds: [],
};
const dir = mkdtempSync(join(tmpdir(), "tokengate-bench-"));
const sink = new RecordSink(join(dir, "records.ndjson"));
const client = new StreamClient(endpoint);
const interrupt = new AbortController();
const stop = new AbortController();
const ctx: TestContext = {
  testName: "client-overhead",
  endpoint,
  client,
  sink,
  request: requestSchema.parse({}),
  rng: createRng(1),
  signal: interrupt.signal,
};
const tasks: LoadTask[] = o.tasks.map((t) => ({ ...t, promptTokens: 2 }));
process.once("SIGTERM", () => stop.abort("SIGTERM"));
process.once("SIGINT", () => interrupt.abort("SIGINT"));
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
const { outcome, selfCheck } = await driveClosed(ctx, {
  users: o.users,
  tasks,
  thinkTime: thinkTimeOf(o.thinkTimeS),
  durationMs: o.durationS * 1000,
  drainTimeoutMs: 5000,
  trial: 0,
  stopSignal: stop.signal,
});
await client.close();
sink.close();
rmSync(dir, { recursive: true, force: true });
const failed = outcome.records.filter((r) => !r.ok);
process.stdout.write(
  `${JSON.stringify({
    records: outcome.records.length,
    failed: failed.length,
    firstError: failed[0]?.errorMessage,
    selfCheck: { cpuCoreFraction: selfCheck.cpuCoreFraction, eventLoopP99Ms: selfCheck.eventLoopDelayMs.p99 },
  })}\n`,
);
