/**
 * Client overhead: CPU time per request and per streamed token of tokengate's load client vs locust (the seed's
 * locustfile) and vs the seed's aiohttp burst script, against the same minimal SSE server (bench/helpers/sse-server.ts)
 * in its own process. Every client runs in its own process; its CPU is read from outside (/proc/PID/task/* /schedstat,
 * ns resolution), and the requests and tokens it got are counted by the server, over the same measured window after a
 * warm-up, so all clients are measured the same way. Clients take turns within each repeat (drift on a shared machine
 * hits all of them alike); the table shows medians of the repeats with their range.
 *
 *   npx tsx bench/client-overhead.ts [--repeats 3] [--window 4] [--scenarios busy,seed] [--json out.json]
 *
 * Scenarios:
 * - busy: 8 users back to back (no think time), /v1/chat/completions streaming 32 tokens: the client's per-request and
 *   per-token cost at a high request rate.
 * - seed: the seed's locustfile (completion x1 + chat x3, 20 tokens, between(1, 3) s think time) with 128 users.
 * tokengate always streams; locust and aiohttp run streaming adaptations (parse every event, time the first token:
 * what tokengate does) and, as a reference, the seed's locustfile as is (non-streaming: one JSON body per request).
 * A last row is not a tool: the floor under any Node client (bench/helpers/node-floor-client.ts), so the table shows
 * how much of tokengate's cost is its own code and how much is Node's event loop and the kernel per chunk.
 */

import { type ChildProcess, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { stopChild } from "../src/util/children.js";
import {
  captureOutput,
  cpuNs,
  cpuTicksNs,
  REPO_ROOT,
  type SseServerProcess,
  SYSTEM_PYTHON,
  sleep,
  spawnCommand,
  spawnSseServer,
  spawnTsx,
} from "./helpers/processes.js";
import type { SseServerStats } from "./helpers/sse-server.js";
import { fmt, median, numArg, parseArgs, spread, table } from "./helpers/table.js";
import type { TokengateLoadOptions } from "./helpers/tokengate-load.js";

const HELPERS = join(REPO_ROOT, "bench", "helpers");

interface ClientSpec {
  name: string;
  /** Like-for-like with tokengate (streams and parses every event). */
  streams: boolean;
  /** Not a tool: a floor that does only the per-chunk work (its cost is what any Node client pays). */
  floor?: boolean;
  start(url: string, maxS: number): ChildProcess;
}

interface Scenario {
  name: string;
  description: string;
  warmupS: number;
  clients: ClientSpec[];
}

function tokengate(o: Omit<TokengateLoadOptions, "url" | "durationS">): ClientSpec {
  return {
    name: "tokengate",
    streams: true,
    start: (url, maxS) =>
      spawnTsx(join(HELPERS, "tokengate-load.ts"), [JSON.stringify({ ...o, url, durationS: maxS })]),
  };
}

/** Not a tool: the floor under any Node client (bench/helpers/node-floor-client.ts), to show what is tokengate's. */
function nodeFloor(o: Omit<TokengateLoadOptions, "url" | "durationS">): ClientSpec {
  return {
    name: "Node floor (undici.dispatch + SSE parse only)",
    streams: true,
    floor: true,
    start: (url) => spawnTsx(join(HELPERS, "node-floor-client.ts"), [JSON.stringify({ ...o, url, durationS: 0 })]),
  };
}

/** Not a tool either: the floor without any HTTP library (bench/helpers/raw-floor-client.ts). */
function rawFloor(o: Omit<TokengateLoadOptions, "url" | "durationS">): ClientSpec {
  return {
    name: "Node floor, raw socket (no HTTP library)",
    streams: true,
    floor: true,
    start: (url) => spawnTsx(join(HELPERS, "raw-floor-client.ts"), [JSON.stringify({ ...o, url, durationS: 0 })]),
  };
}

function locust(o: { users: number; stream: boolean; wait: string; mix: string; maxTokens: number }): ClientSpec {
  return {
    name: o.stream ? "locust (streaming adaptation)" : "locust (seed as is, non-streaming)",
    streams: o.stream,
    start: (url, maxS) =>
      spawnCommand(
        SYSTEM_PYTHON,
        [
          "-m",
          "locust",
          "-f",
          join(HELPERS, "locustfile.py"),
          "--headless",
          "-u",
          String(o.users),
          "-r",
          String(o.users),
          "-t",
          `${Math.ceil(maxS)}s`,
          "--host",
          url,
          "--only-summary",
          "--loglevel",
          "WARNING",
        ],
        {
          BENCH_STREAM: o.stream ? "1" : "0",
          BENCH_WAIT: o.wait,
          BENCH_MIX: o.mix,
          BENCH_MAX_TOKENS: String(o.maxTokens),
        },
      ),
  };
}

function aiohttp(o: { burst: number; stream: boolean; maxTokens: number; path: string }): ClientSpec {
  return {
    name: o.stream ? "aiohttp burst (streaming adaptation)" : "aiohttp burst (seed as is, non-streaming)",
    streams: o.stream,
    start: (url, maxS) =>
      spawnCommand(SYSTEM_PYTHON, [
        join(HELPERS, "aiohttp_burst.py"),
        url,
        "--burst",
        String(o.burst),
        "--duration",
        String(maxS),
        "--path",
        o.path,
        "--max-tokens",
        String(o.maxTokens),
        ...(o.stream ? ["--stream"] : []),
      ]),
  };
}

const BUSY_TOKENS = 32;
const BUSY: Omit<TokengateLoadOptions, "url" | "durationS"> = {
  users: 8,
  thinkTimeS: 0,
  tasks: [{ name: "chat", weight: 1, api: "openai-chat", prompt: "Hi", maxTokens: BUSY_TOKENS }],
};
const SEED: Omit<TokengateLoadOptions, "url" | "durationS"> = {
  users: 128,
  thinkTimeS: [1, 3],
  tasks: [
    { name: "completion", weight: 1, api: "completion", prompt: "Hello world", maxTokens: 20 },
    { name: "chat", weight: 3, api: "openai-chat", prompt: "Hi", maxTokens: 20 },
  ],
};
const SCENARIOS: Scenario[] = [
  {
    name: "busy",
    description: `8 users back to back, /v1/chat/completions streaming ${BUSY_TOKENS} tokens`,
    warmupS: 1.5,
    clients: [
      tokengate(BUSY),
      locust({ users: 8, stream: true, wait: "constant:0", mix: "chat", maxTokens: BUSY_TOKENS }),
      aiohttp({ burst: 8, stream: true, maxTokens: BUSY_TOKENS, path: "/v1/chat/completions" }),
      locust({ users: 8, stream: false, wait: "constant:0", mix: "chat", maxTokens: BUSY_TOKENS }),
      nodeFloor(BUSY),
      rawFloor(BUSY),
    ],
  },
  {
    name: "seed",
    description: "the seed's locustfile: 128 users, completion x1 + chat x3, 20 tokens, between(1, 3) s think time",
    // All users start at once (locust -r 128): after the first think time the arrivals are spread out.
    warmupS: 2.5,
    clients: [
      tokengate(SEED),
      locust({ users: 128, stream: true, wait: "between:1:3", mix: "seed", maxTokens: 20 }),
      locust({ users: 128, stream: false, wait: "between:1:3", mix: "seed", maxTokens: 20 }),
      nodeFloor(SEED),
      rawFloor(SEED),
    ],
  },
];

interface Measurement {
  scenario: string;
  client: string;
  repeat: number;
  windowS: number;
  requests: number;
  tokens: number;
  clientCpuS: number;
  /** The same from /proc/PID/stat (clock ticks), as a cross-check, split into user and system (kernel) time. */
  clientUserS: number;
  clientSystemS: number;
  /** TCP connections the client opened in the window. */
  connections: number;
  serverCpuS: number;
}

interface Sample {
  atNs: bigint;
  clientNs: number;
  clientTicks: { userNs: number; systemNs: number };
  serverNs: number;
  stats: SseServerStats;
}

async function sample(server: SseServerProcess, pid: number): Promise<Sample> {
  // Counters first, CPU right after: the GET costs the server a little CPU, the same for every client.
  const stats = await server.stats();
  return {
    atNs: process.hrtime.bigint(),
    clientNs: cpuNs(pid),
    clientTicks: cpuTicksNs(pid),
    serverNs: cpuNs(server.pid),
    stats,
  };
}

async function measure(
  server: SseServerProcess,
  scenario: Scenario,
  spec: ClientSpec,
  repeat: number,
  windowS: number,
): Promise<Measurement> {
  const before = await server.stats();
  const child = spec.start(server.url, scenario.warmupS + windowS + 30);
  const output = captureOutput(child);
  try {
    // Started when the server has seen its first request (interpreter start-up is not part of the client's cost).
    const deadline = Date.now() + 30_000;
    while ((await server.stats()).started === before.started) {
      if (child.exitCode !== null) throw new Error(`${spec.name} exited early: ${output()}`);
      if (Date.now() > deadline) throw new Error(`${spec.name} sent nothing in 30 s: ${output()}`);
      await sleep(50);
    }
    await sleep(scenario.warmupS * 1000);
    const a = await sample(server, child.pid!);
    await sleep(windowS * 1000);
    const b = await sample(server, child.pid!);
    if (child.exitCode !== null) throw new Error(`${spec.name} exited during the window: ${output()}`);
    return {
      scenario: scenario.name,
      client: spec.name,
      repeat,
      windowS: Number(b.atNs - a.atNs) / 1e9,
      requests: b.stats.completed - a.stats.completed,
      tokens: b.stats.tokens - a.stats.tokens,
      clientCpuS: (b.clientNs - a.clientNs) / 1e9,
      clientUserS: (b.clientTicks.userNs - a.clientTicks.userNs) / 1e9,
      clientSystemS: (b.clientTicks.systemNs - a.clientTicks.systemNs) / 1e9,
      connections: b.stats.connections - a.stats.connections,
      serverCpuS: (b.serverNs - a.serverNs) / 1e9,
    };
  } finally {
    await stopChild(child, 3000);
  }
}

function pythonVersion(): string {
  try {
    return execFileSync(
      SYSTEM_PYTHON,
      ["-c", "import sys, aiohttp; print(sys.version.split()[0], 'aiohttp', aiohttp.__version__)"],
      { encoding: "utf8" },
    ).trim();
  } catch {
    return "?";
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const repeats = numArg(args, "repeats", 3);
  const windowS = numArg(args, "window", 4);
  const wanted = (args.get("scenarios") ?? "busy,seed").split(",");
  const scenarios = SCENARIOS.filter((s) => wanted.includes(s.name));
  const load0 = loadavg()[0]!;
  const t0 = Date.now();
  const server = await spawnSseServer({ tokenIntervalMs: 0 });
  const all: Measurement[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      for (const sc of scenarios) {
        for (const spec of sc.clients) {
          const m = await measure(server, sc, spec, r, windowS);
          all.push(m);
          process.stderr.write(
            `[${sc.name} ${r + 1}/${repeats}] ${spec.name}: ${m.requests} req, ${fmt((1000 * m.clientCpuS) / m.requests, 3)} ms CPU/req\n`,
          );
        }
      }
    }
  } finally {
    await server.stop();
  }

  const out: string[] = [];
  out.push(
    `client-overhead: ${repeats} repeats x ${windowS} s windows, medians (min–max); Node ${process.version}, python ${pythonVersion()}, Debian python3-locust 2.12.1 (it reports no version of its own); load average ${fmt(load0, 1)} at start, ${fmt(loadavg()[0]!, 1)} at end; ${fmt((Date.now() - t0) / 1000, 0)} s`,
  );
  const headline: string[] = [];
  for (const sc of scenarios) {
    const rows: string[][] = [];
    const perReq = (client: string) =>
      all.filter((m) => m.scenario === sc.name && m.client === client).map((m) => (1000 * m.clientCpuS) / m.requests);
    const locustStream = median(perReq("locust (streaming adaptation)"));
    const locustSeed = median(perReq("locust (seed as is, non-streaming)"));
    for (const spec of sc.clients) {
      const ms = all.filter((m) => m.scenario === sc.name && m.client === spec.name);
      const cpuPerReqMs = ms.map((m) => (1000 * m.clientCpuS) / m.requests);
      const ratios = ms.map((m) => {
        const base = all.find(
          (x) => x.scenario === sc.name && x.repeat === m.repeat && x.client === "locust (streaming adaptation)",
        );
        return base ? m.clientCpuS / m.requests / (base.clientCpuS / base.requests) : Number.NaN;
      });
      rows.push([
        spec.name,
        spread(
          ms.map((m) => m.requests / m.windowS),
          0,
        ),
        spread(cpuPerReqMs, 3),
        spread(
          ms.map((m) => (1e6 * m.clientCpuS) / m.tokens),
          1,
        ),
        spread(
          ms.map((m) => (100 * m.clientCpuS) / m.windowS),
          0,
        ),
        spread(
          ms.map((m) => (100 * m.serverCpuS) / m.windowS),
          0,
        ),
        spread(ratios, 2),
        spread(
          ms.map((m) => (100 * m.clientSystemS) / (m.clientUserS + m.clientSystemS)),
          0,
        ),
        spread(
          ms.map((m) => m.connections),
          0,
        ),
      ]);
    }
    out.push("", `### ${sc.name}: ${sc.description}`, "");
    out.push(
      table(
        [
          "client",
          "req/s",
          "client CPU ms/request",
          "client CPU µs/token",
          "client CPU % of a core",
          "server CPU % of a core",
          "vs locust streaming (same repeat)",
          "kernel % of client CPU",
          "connections opened",
        ],
        rows,
      ),
    );
    const tg = median(perReq("tokengate"));
    const ratio = tg / locustStream;
    headline.push(
      `${sc.name}: tokengate ${fmt(tg, 3)} ms CPU/request = ${fmt(ratio, 2)}x locust streaming (${fmt(locustStream, 3)} ms)` +
        (Number.isFinite(locustSeed) ? `, ${fmt(tg / locustSeed, 2)}x the seed's non-streaming locustfile` : "") +
        ` — target <= 0.25x: ${ratio <= 0.25 ? "met" : "MISSED"}`,
    );
    // The floors say whether any Node client could meet the target here: one that does only the per-chunk work.
    const floors = sc.clients.filter((c) => c.floor).map((c) => c.name);
    if (floors.length > 0) {
      headline.push(
        `${sc.name}: floors ` +
          floors.map((f) => `${f} ${fmt(median(perReq(f)) / locustStream, 2)}x locust`).join(", ") +
          `; tokengate = ${fmt(tg / Math.min(...floors.map((f) => median(perReq(f)))), 2)}x the lowest floor`,
      );
    }
  }
  out.push("", ...headline);
  process.stdout.write(`${out.join("\n")}\n`);
  const json = args.get("json");
  if (json) writeFileSync(json, `${JSON.stringify({ repeats, windowS, load0, measurements: all }, null, 2)}\n`);
}

await main();
