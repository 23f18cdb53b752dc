/**
 * Timing fidelity: how much of tokengate's TTFT is not the server's own prompt time, at low load on loopback.
 *
 *   npx tsx bench/timing-fidelity.ts [--requests 40] [--prompt-tokens 32]
 *
 * 1. A real llama-server (the cached CPU build, the tiny synthetic model, started by the project's target,
 *    src/target/llama-server.ts): requests one at a time, with an idle gap between them, distinct prompts (no prompt
 *    cache), for /completion and /v1/chat/completions. Per request: client TTFT - `timings.prompt_ms`, and where the
 *    rest of the request went (TTFB - first token; e2e - prompt_ms - predicted_ms).
 * 2. The part that is tokengate's own: the minimal SSE server (bench/helpers/sse-server.ts, `stamp`) records on the
 *    machine-wide monotonic clock when it handed each request's first content event to its socket; the client's
 *    first-token time minus that is loopback delivery plus tokenGate's client (undici, SSE parsing, event reading).
 *
 * What llama-server's `prompt_ms` covers (b1-80fb11a, tools/server/server-context.cpp and server-common.h): from the
 * moment a slot starts on the prompt (`update_prompt_start`) to the moment the first output token has been sampled
 * (`update_prompt_last` when n_gen == 1). In this build the first token is sampled from the last prompt batch's
 * logits ("the first token is free"), so there is no separate decode step for it: prompt_ms already contains it.
 * Outside prompt_ms and inside TTFT: HTTP receive and JSON parsing, the chat template (chat only), tokenization, the
 * task queue and the slot launch (sampler set-up, including logit_bias for the banned byte tokens), then after the
 * token: detokenizing it, the result queue back to the HTTP thread, serializing the SSE event, loopback, and the
 * client's own parsing.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { StreamClient } from "../src/client/stream-client.js";
import { nowNs } from "../src/measure/clock.js";
import type { RequestRecord } from "../src/measure/record.js";
import { createLlamaServerTarget } from "../src/target/llama-server.js";
import type { ApiKind } from "../src/target/types.js";
import { createRng } from "../src/util/rng.js";
import { makePrompt } from "../src/workload/prompts.js";
import { findLlamaServerForTests, tinyModel } from "../test/helpers/models.js";
import { sleep, spawnSseServer } from "./helpers/processes.js";
import { fmt, median, numArg, parseArgs, percentile, table } from "./helpers/table.js";

const ms = (ns: number) => ns / 1e6;

/** process.hrtime.bigint() at the run clock's zero (nowNs() counts from a private origin). */
function runClockOriginNs(): bigint {
  let best: bigint | undefined;
  let bestWidth = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 50; i++) {
    const a = process.hrtime.bigint();
    const mid = nowNs();
    const b = process.hrtime.bigint();
    const width = Number(b - a);
    if (width < bestWidth) {
      bestWidth = width;
      best = (a + b) / 2n - BigInt(Math.round(mid));
    }
  }
  return best!;
}

function summary(name: string, values: number[]): string[] {
  return [
    name,
    String(values.length),
    fmt(median(values), 3),
    fmt(percentile(values, 10), 3),
    fmt(percentile(values, 90), 3),
    fmt(Math.max(...values), 3),
  ];
}

/** llama-server's log timestamp `M.SS.mmm.uuu` (minutes.seconds.milliseconds.microseconds since start) in ms. */
function logTimeMs(line: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+) /.exec(line);
  if (!m) return undefined;
  return (Number(m[1]) * 60 + Number(m[2])) * 1000 + Number(m[3]) + Number(m[4]) / 1000;
}

interface LlamaPass {
  build: string;
  records: Map<ApiKind, RequestRecord[]>;
  /** verbose only: per request, completion handler entry -> the slot starts the prompt (ms, server clock). */
  prePromptMs: Map<ApiKind, number[]>;
}

async function llamaPass(o: {
  requests: number;
  promptTokens: number;
  maxTokens: number;
  verbose: boolean;
  gapMs: number;
  serverFlags: string[];
}): Promise<LlamaPass> {
  const rng = createRng(5);
  const target = createLlamaServerTarget({
    model: await tinyModel(),
    serverBin: await findLlamaServerForTests(),
    // One thread: on a busy 2-core machine llama.cpp's spinning worker threads stall each other (FACTS.md).
    threads: 1,
    serverFlags: [
      "--parallel",
      "1",
      "-c",
      "1024",
      ...o.serverFlags,
      ...(o.verbose ? ["--log-timestamps", "-lv", "4"] : []),
    ],
  });
  const endpoint = await target.start();
  const build = (await target.fingerprint()).build ?? "?";
  const client = new StreamClient(endpoint, { stallTimeoutMs: 30_000 });
  const records = new Map<ApiKind, RequestRecord[]>();
  const prePromptMs = new Map<ApiKind, number[]>();
  const warmup = 3;
  try {
    for (const api of ["completion", "openai-chat"] as const) {
      const list: RequestRecord[] = [];
      const logStart = o.verbose ? readFileSync(endpoint.logFile!, "utf8").length : 0;
      for (let i = 0; i < o.requests + warmup; i++) {
        const r = await client.send(
          {
            api,
            prompt: makePrompt(o.promptTokens, rng),
            maxTokens: o.maxTokens,
            ignoreEos: true,
            temperature: 0,
            cachePrompt: false,
          },
          { id: i, test: "timing-fidelity", scenario: api, trial: 0, measured: i >= warmup },
        );
        if (!r.ok) throw new Error(`${api} request failed: ${r.errorMessage}`);
        if (r.measured) list.push(r);
        await sleep(o.gapMs); // low load: the server is idle when the next request arrives
      }
      records.set(api, list);
      if (o.verbose) {
        // Requests are sequential on one slot: the n-th handler entry belongs to the n-th prompt start.
        const lines = readFileSync(endpoint.logFile!, "utf8").slice(logStart).split("\n");
        const entries = lines.filter((l) => l.includes("conv_id=")).map(logTimeMs);
        const starts = lines.filter((l) => l.includes("new prompt,")).map(logTimeMs);
        if (entries.length !== starts.length || entries.length !== o.requests + warmup) {
          throw new Error(
            `verbose log: ${entries.length} handler entries and ${starts.length} prompt starts for ${o.requests + warmup} requests (log format changed?)`,
          );
        }
        prePromptMs.set(
          api,
          entries.slice(warmup).map((e, i) => starts[i + warmup]! - e!),
        );
      }
    }
  } finally {
    await client.close();
    await target.stop();
  }
  return { build, records, prePromptMs };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const requests = numArg(args, "requests", 40);
  const promptTokens = numArg(args, "prompt-tokens", 32);
  const maxTokens = 8;
  const gapMs = numArg(args, "gap-ms", 20);
  const serverFlags = (args.get("server-flags") ?? "").split(/\s+/).filter(Boolean);
  const load0 = loadavg()[0]!;
  const t0 = Date.now();
  const rows: string[][] = [];
  const headline: string[] = [];

  // 1. llama-server, quiet: the headline.
  const quiet = await llamaPass({ requests, promptTokens, maxTokens, verbose: false, gapMs, serverFlags });
  for (const [api, records] of quiet.records) {
    const withTimings = records.filter((r) => r.firstTokenNs !== undefined && r.serverTimings?.prompt_ms !== undefined);
    const gap = withTimings.map((r) => ms(r.firstTokenNs! - r.startNs) - r.serverTimings!.prompt_ms!);
    const promptMs = withTimings.map((r) => r.serverTimings!.prompt_ms!);
    const ttft = withTimings.map((r) => ms(r.firstTokenNs! - r.startNs));
    const firstByteToToken = withTimings.map((r) => ms(r.firstTokenNs! - (r.firstByteNs ?? r.firstTokenNs!)));
    const outside = withTimings.map(
      (r) => ms(r.endNs - r.startNs) - r.serverTimings!.prompt_ms! - (r.serverTimings!.predicted_ms ?? 0),
    );
    rows.push(summary(`llama-server ${api}: TTFT`, ttft));
    rows.push(summary(`llama-server ${api}: server prompt_ms`, promptMs));
    rows.push(summary(`llama-server ${api}: **TTFT − prompt_ms**`, gap));
    rows.push(summary(`llama-server ${api}: first byte → first token event`, firstByteToToken));
    rows.push(summary(`llama-server ${api}: e2e − prompt_ms − predicted_ms`, outside));
    const m = median(gap);
    headline.push(
      `llama-server ${api}: median TTFT − prompt_ms = ${fmt(m, 3)} ms (p90 ${fmt(percentile(gap, 90), 3)}) — target <= 1 ms: ${m <= 1 ? "met" : "MISSED"}`,
    );
  }

  // 1b. The same with llama-server's timestamped verbose log (a separate pass: logging costs the server time): the
  // server's own time from entering the completion handler to starting the prompt (tokenize, parse parameters, queue,
  // pick and launch a slot), which is in TTFT but not in prompt_ms.
  const verbose = await llamaPass({
    requests: Math.min(requests, 20),
    promptTokens,
    maxTokens,
    verbose: true,
    gapMs,
    serverFlags,
  });
  for (const [api, prePrompt] of verbose.prePromptMs) {
    rows.push(summary(`llama-server ${api} (verbose log): handler entry → prompt start`, prePrompt));
  }
  // 2. The client's own share: first content event handed to the server's socket -> tokengate's first-token time.
  const sse = await spawnSseServer({ tokenIntervalMs: 0, stamp: true });
  const sseClient = new StreamClient(sse.endpoint);
  const originNs = runClockOriginNs();
  const own: number[] = [];
  try {
    const records: RequestRecord[] = [];
    for (let i = 0; i < requests + 3; i++) {
      const r = await sseClient.send(
        {
          api: "openai-chat",
          prompt: `fidelity ${i}`,
          maxTokens,
          ignoreEos: true,
          temperature: 0,
          cachePrompt: false,
        },
        { id: i, test: "timing-fidelity", scenario: "sse", trial: 0, measured: i >= 3 },
      );
      if (!r.ok) throw new Error(`SSE server request failed: ${r.errorMessage}`);
      if (r.measured) records.push(r);
      await sleep(gapMs);
    }
    const stamps = await sse.stamps();
    for (const [i, r] of records.entries()) {
      const stamp = stamps[`fidelity ${i + 3}`];
      if (stamp === undefined || r.firstTokenNs === undefined) continue;
      own.push(Number(BigInt(Math.round(r.firstTokenNs)) + originNs - BigInt(stamp)) / 1e6);
    }
  } finally {
    await sseClient.close();
    await sse.stop();
  }
  rows.push(summary("SSE server: first event written → tokengate first token (loopback + client)", own));

  const out = [
    `timing-fidelity: ${requests} requests per API, one at a time (20 ms idle between), ~${promptTokens}-token distinct prompts, ${maxTokens} output tokens; llama-server ${quiet.build} (1 thread, --parallel 1), tiny synthetic model; Node ${process.version}; load average ${fmt(load0, 1)} at start, ${fmt(loadavg()[0]!, 1)} at end; ${fmt((Date.now() - t0) / 1000, 0)} s`,
    "",
    table(["ms", "n", "median", "p10", "p90", "max"], rows),
    "",
    ...headline,
    `tokengate's own share (loopback + client, from the SSE server's stamps): median ${fmt(median(own), 3)} ms, p90 ${fmt(percentile(own, 90), 3)} ms`,
  ];
  process.stdout.write(`${out.join("\n")}\n`);
}

await main();
