/**
 * Soak (issue 13): the native engine (the closed loop of src/workload/schedulers/closed-loop.ts, StreamClient, one
 * NDJSON record per request on disk, as a stress test drives it) against the no-op SSE server of bench/helpers in its
 * own process, for --requests streamed requests, sampling this process's RSS, heap, CPU, active handles and timers over
 * time. Then the fixed cost of the per-test samplers alone (the machine-load sampler and the server sampler's /metrics
 * and /slots polling) on an idle endpoint, as a share of one core, and the marginal CPU per streamed request.
 *
 *   npx tsx bench/soak.ts [--requests 1000000] [--users 8] [--tokens 16] [--idle-s 30] [--keep]
 *                         [--llama-server BIN --model FILE]   (the samplers' cost against an idle real llama-server)
 *
 * Prints a table; the figures go to docs/performance.md ("Soak"). Speed is not asserted anywhere.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamClient } from "../src/client/stream-client.js";
import { startMachineSampler } from "../src/measure/machine-load.js";
import { RecordSink } from "../src/measure/record-sink.js";
import { startServerSampler } from "../src/measure/server-metrics.js";
import { createLlamaServerTarget } from "../src/target/llama-server.js";
import { createRng } from "../src/util/rng.js";
import { runClosedLoop } from "../src/workload/schedulers/closed-loop.js";
import { cpuNs, sleep, spawnSseServer } from "./helpers/processes.js";
import { fmt, numArg, parseArgs, table } from "./helpers/table.js";

interface Sample {
  t: number;
  done: number;
  rssMb: number;
  heapMb: number;
  cpuS: number;
  handles: number;
}

function handles(): number {
  const p = process as unknown as { _getActiveHandles?: () => unknown[]; getActiveResourcesInfo?: () => string[] };
  return p.getActiveResourcesInfo?.().length ?? p._getActiveHandles?.().length ?? -1;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const requests = numArg(args, "requests", 1_000_000);
  const users = numArg(args, "users", 8);
  const tokens = numArg(args, "tokens", 16);
  const idleS = numArg(args, "idle-s", 30);
  const server = await spawnSseServer({ defaultTokens: tokens });
  const dir = mkdtempSync(join(tmpdir(), "tokengate-soak-"));
  const sink = new RecordSink(join(dir, "records.ndjson"));
  const client = new StreamClient(server.endpoint);
  const samples: Sample[] = [];
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let done = 0;
  let failed = 0;
  const sample = () => {
    const m = process.memoryUsage();
    const c = process.cpuUsage(cpu0);
    samples.push({
      t: (performance.now() - t0) / 1000,
      done,
      rssMb: m.rss / 2 ** 20,
      heapMb: m.heapUsed / 2 ** 20,
      cpuS: (c.user + c.system) / 1e6,
      handles: handles(),
    });
  };
  const timer = setInterval(sample, 5000);
  sample();
  const perUser = Math.ceil(requests / users);
  let id = 0;
  const outcome = await runClosedLoop<{ prompt: string }>({
    users,
    iterations: perUser,
    pick: () => ({ prompt: "hello" }),
    thinkTime: { kind: "constant", seconds: 0 },
    rng: createRng(1),
    signal: new AbortController().signal,
    drainTimeoutMs: 5000,
    send: async (job, signal) =>
      client.send(
        {
          api: "completion",
          prompt: job.task.prompt,
          maxTokens: tokens,
          ignoreEos: true,
          temperature: 0,
          cachePrompt: false,
        },
        { id: id++, test: "soak", scenario: "soak", trial: 0, measured: job.measured },
        signal,
      ),
    onRecord: (r) => {
      sink.write(r);
      done++;
      if (!r.ok) failed++;
    },
    // --keep: hold every record in memory as the tests do (they summarize them), to measure what a record costs.
    keepRecords: args.has("keep"),
  });
  clearInterval(timer);
  sample();
  const wallS = (performance.now() - t0) / 1000;
  const clientCpuS = samples.at(-1)!.cpuS;
  const serverCpuS = cpuNs(server.pid) / 1e9;
  sink.close();
  await client.close();

  // The samplers' fixed cost: both on an idle endpoint for idle-s seconds, CPU of this process only. With
  // --llama-server BIN --model FILE the endpoint is an idle real llama-server, so /metrics and /slots are polled too
  // (the SSE server has neither).
  await sleep(1000);
  const bin = args.get("llama-server");
  const model = args.get("model");
  const real =
    bin && model
      ? createLlamaServerTarget({ model, serverBin: bin, threads: 1, serverFlags: ["--parallel", "2"] })
      : undefined;
  const idleEndpoint = real ? await real.start() : server.endpoint;
  await sleep(1000);
  const idle0 = process.cpuUsage();
  const machine = startMachineSampler(() => [process.pid]);
  const serverSampler = await startServerSampler(idleEndpoint);
  await sleep(idleS * 1000);
  machine.stop();
  await serverSampler.stop();
  const idleCpu = process.cpuUsage(idle0);
  const samplerCore = (idleCpu.user + idleCpu.system) / 1e6 / idleS;
  const base0 = process.cpuUsage();
  await sleep(idleS * 1000);
  const baseCpu = process.cpuUsage(base0);
  const idleCore = (baseCpu.user + baseCpu.system) / 1e6 / idleS;

  await real?.stop();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
  // Warm-up: V8 grows its heap to a steady size over the first requests (RSS rises, then stays flat); growth is
  // counted from the first sample past 15% of the requests.
  const first = samples.find((s) => s.done >= requests * 0.15) ?? samples[0]!;
  const last = samples.at(-1)!;
  const ok = done - failed;
  void outcome;
  process.stdout.write(
    `${table(
      ["t (s)", "requests done", "RSS (MB)", "heap (MB)", "client CPU (s)", "active resources"],
      samples
        .filter((_, i) => i % Math.max(1, Math.floor(samples.length / 12)) === 0 || _ === last)
        .map((s) => [
          fmt(s.t, 0),
          String(s.done),
          fmt(s.rssMb, 1),
          fmt(s.heapMb, 1),
          fmt(s.cpuS, 1),
          String(s.handles),
        ]),
    )}\n\n`,
  );
  process.stdout.write(
    `${table(
      ["figure", "value"],
      [
        [
          "streamed requests",
          `${done} (${ok} ok) by ${users} users, ${tokens} tokens each, in ${fmt(wallS, 0)} s (${fmt(done / wallS, 0)} req/s)`,
        ],
        [
          "RSS growth after warm-up",
          `${fmt(last.rssMb - first.rssMb, 1)} MB (from ${fmt(first.rssMb, 1)} MB at ${first.done} requests)`,
        ],
        ["heap growth after warm-up", `${fmt(last.heapMb - first.heapMb, 1)} MB`],
        ["active resources (start -> end)", `${samples[0]!.handles} -> ${last.handles}`],
        [
          "client CPU per streamed request",
          `${fmt((clientCpuS / done) * 1e6, 1)} us (server ${fmt((serverCpuS / done) * 1e6, 1)} us)`,
        ],
        [
          "samplers' fixed cost (idle endpoint)",
          `${fmt(100 * (samplerCore - idleCore), 2)}% of a core (${fmt(100 * samplerCore, 2)}% with, ${fmt(100 * idleCore, 2)}% without)`,
        ],
      ],
    )}\n`,
  );
}

void main();
