import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamClient } from "../../src/client/stream-client.js";
import type { RequestRecord } from "../../src/measure/record.js";
import {
  busySlots,
  counterDeltas,
  deriveRates,
  LoadAccumulator,
  parseLlamaMetrics,
  startServerSampler,
} from "../../src/measure/server-metrics.js";
import { createLlamaServerTarget, type LlamaServerTarget } from "../../src/target/llama-server.js";
import type { Endpoint } from "../../src/target/types.js";
import { createRng } from "../../src/util/rng.js";
import { makePrompt } from "../../src/workload/prompts.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

// Real llama-server responses (copied from shared/reference/llama-server: b1-80fb11a, synthetic models).
const REF = join(import.meta.dirname, "..", "fixtures", "llama-server");

/** The captured files start with a status line and headers; the Prometheus text follows the first blank line. */
function referenceMetrics(file: string): string {
  const text = readFileSync(join(REF, file), "utf8");
  return text.startsWith("HTTP ") ? text.slice(text.indexOf("\n\n") + 2) : text;
}

describe("parsing llama-server /metrics and /slots (real captured responses)", () => {
  it("reads every counter and gauge of a real /metrics answer", () => {
    const snap = parseLlamaMetrics(referenceMetrics("metrics_after.txt"));
    expect(snap?.values).toMatchObject({
      prompt_tokens_total: 836,
      prompt_tokens_cached_total: 242,
      prompt_seconds_total: 0.021786,
      tokens_predicted_total: 264,
      tokens_predicted_seconds_total: 0.335771,
      n_decode_total: 170,
      requests_processing: 0,
      requests_deferred: 0,
      n_busy_slots_per_decode: 1.55294,
    });
  });

  it("rejects text that is not llama-server's", () => {
    expect(parseLlamaMetrics("vllm:num_requests_running 3\n")).toBeUndefined();
    expect(parseLlamaMetrics("<html>not found</html>")).toBeUndefined();
    expect(parseLlamaMetrics("")).toBeUndefined();
  });

  it("turns two scrapes into deltas and rates, and refuses counters that went backwards", () => {
    const after = parseLlamaMetrics(referenceMetrics("metrics_h200_7b_q4_0.txt"))!;
    const zero = { values: Object.fromEntries(Object.keys(after.values).map((k) => [k, 0])) };
    const c = counterDeltas(zero, after)!;
    expect(c).toMatchObject({ promptTokens: 4573, tokensPredicted: 4439, decodeCalls: 385, cachedPromptTokens: 0 });
    const r = deriveRates(c, 20, zero, after);
    // 4439 tokens over 109.716 s summed over slots: ~40 tok/s per stream, while the server made 222 tok/s overall.
    expect(r.decodeTokensPerSPerSlot).toBeCloseTo(4439 / 109.716, 6);
    expect(r.decodeTokensPerS).toBeCloseTo(4439 / 20, 6);
    expect(r.busySlotsPerDecode).toBeCloseTo(11.5662, 3);
    expect(r.draftAcceptance).toBeUndefined();
    expect(counterDeltas(after, zero)).toBeUndefined();
  });

  it("reads busy slots from /slots", () => {
    const idle = readFileSync(join(REF, "slots_idle.txt"), "utf8");
    const json = JSON.parse(idle.slice(idle.indexOf("\n\n") + 2));
    expect(busySlots(json)).toEqual({ slots: 4, busy: 0 });
    expect(busySlots([{ is_processing: true }, { is_processing: false }])).toEqual({ slots: 2, busy: 1 });
    expect(busySlots({ error: "no" })).toBeUndefined();
  });

  it("keeps exact aggregates and a bounded timeline over many samples", () => {
    const acc = new LoadAccumulator(250, 16);
    for (let i = 0; i < 1000; i++) acc.add({ tMs: i * 250, busySlots: i % 4, deferred: i % 10 === 0 ? 2 : 0 }, 4);
    const s = acc.summary();
    expect(s.samples).toBe(1000);
    expect(s.timeline.length).toBeLessThanOrEqual(16);
    expect(s.timeline.length).toBeGreaterThanOrEqual(8);
    // Thinning keeps evenly spaced points from the start to near the end.
    expect(s.timeline[0]?.tMs).toBe(0);
    expect(s.timeline.at(-1)!.tMs).toBeGreaterThan(200_000);
    expect(s.busySlotsMean).toBeCloseTo(1.5, 9);
    expect(s.busySlotsMax).toBe(3);
    expect(s.occupancy).toBeCloseTo(1.5 / 4, 9);
    expect(s.allBusyShare).toBe(0);
    expect(s.deferredShare).toBeCloseTo(0.1, 9);
    expect(s.deferredMax).toBe(2);
  });
});

describe("server sampler against servers without llama-server counters", () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    // A real HTTP server standing in for vLLM/TGI: /metrics exists but has other names; /other has no /metrics.
    server = createServer((req, res) => {
      if (req.url === "/vllm/metrics")
        res.writeHead(200, { "content-type": "text/plain" }).end("vllm:num_requests_running 1\n");
      else res.writeHead(404).end("not found");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const endpoint = (metricsUrl?: string): Endpoint => ({
    baseUrl: base,
    apis: ["openai-chat"],
    modelName: "m",
    bannedTokenIds: [],
    ...(metricsUrl ? { metricsUrl } : {}),
  });

  it("is silently absent: no metricsUrl, a 404, another server's names", async () => {
    for (const ep of [endpoint(), endpoint(`${base}/metrics`), endpoint(`${base}/vllm/metrics`)]) {
      const sampler = await startServerSampler(ep);
      expect(await sampler.stop()).toBeUndefined();
    }
  });
});

describe("server sampler against a real llama-server (tiny model, 2 slots)", () => {
  const dir = mkdtempSync(join(tmpdir(), "tokengate-server-metrics-test-"));
  let target: LlamaServerTarget;
  let endpoint: Endpoint;
  beforeAll(async () => {
    target = createLlamaServerTarget({
      model: await tinyModel(),
      serverBin: await findLlamaServerForTests(),
      threads: 2,
      serverFlags: ["--parallel", "2", "-c", "2048"],
      logFile: join(dir, "llama-server.log"),
    });
    endpoint = await target.start();
  });
  afterAll(async () => {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("counter deltas equal what the client counted; slots and queueing are sampled", async () => {
    const client = new StreamClient(endpoint);
    const rng = createRng(7);
    const sampler = await startServerSampler(endpoint, { intervalMs: 20 });
    const records: RequestRecord[] = [];
    const maxTokens = 48;
    // 6 requests, 4 at a time on 2 slots: two of them wait for a slot (requests_deferred).
    let next = 0;
    const worker = async () => {
      while (next < 6) {
        const id = next++;
        records.push(
          await client.send(
            {
              api: "completion",
              prompt: makePrompt(200, rng),
              maxTokens,
              ignoreEos: true,
              temperature: 0,
              cachePrompt: false,
            },
            { id, test: "t", scenario: "s", trial: 0, measured: true },
          ),
        );
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    await client.close();
    const obs = await sampler.stop();

    expect(records.every((r) => r.ok)).toBe(true);
    expect(obs).toBeDefined();
    const sumOut = records.reduce((s, r) => s + (r.outputTokens ?? 0), 0);
    const sumPrompt = records.reduce((s, r) => s + (r.promptTokens ?? 0), 0);
    expect(sumOut).toBe(6 * maxTokens);
    expect(obs!.counters.tokensPredicted).toBe(sumOut);
    // prompt_tokens_total excludes cached tokens; together they are every prompt token the client was billed for.
    expect(obs!.counters.promptTokens + obs!.counters.cachedPromptTokens).toBe(sumPrompt);
    expect(obs!.counters.decodeCalls).toBeGreaterThanOrEqual(maxTokens);
    expect(obs!.rates.decodeTokensPerSPerSlot).toBeGreaterThan(0);
    expect(obs!.rates.promptTokensPerS).toBeGreaterThan(0);
    // Two slots decode together most of the time: more than one busy slot per decode call on average.
    expect(obs!.rates.busySlotsPerDecode).toBeGreaterThan(1);
    expect(obs!.rates.busySlotsPerDecode).toBeLessThanOrEqual(2);
    expect(obs!.scrapeErrors).toBe(0);
    const load = obs!.load!;
    expect(load.slots).toBe(2);
    expect(load.samples).toBeGreaterThan(0);
    expect(load.busySlotsMax).toBe(2);
    expect(load.busySlotsMax!).toBeLessThanOrEqual(2);
    expect(load.timeline.length).toBeGreaterThan(0);
    expect(load.timeline.every((s) => s.busySlots === undefined || s.busySlots <= 2)).toBe(true);

    // An idle window afterwards: zero deltas, nothing busy.
    const idle = await startServerSampler(endpoint, { intervalMs: 20 });
    await new Promise((r) => setTimeout(r, 100));
    const quiet = await idle.stop();
    expect(quiet!.counters.tokensPredicted).toBe(0);
    expect(quiet!.counters.promptTokens).toBe(0);
    expect(quiet!.load?.busySlotsMax).toBe(0);
  });
});

describe("server sampler against a llama-server that requires an API key", () => {
  const dir = mkdtempSync(join(tmpdir(), "tokengate-server-metrics-key-"));
  const KEY = "tg-sampler-key-0b9e";
  let target: LlamaServerTarget;
  let endpoint: Endpoint;
  beforeAll(async () => {
    target = createLlamaServerTarget({
      model: await tinyModel(),
      serverBin: await findLlamaServerForTests(),
      threads: 1,
      apiKey: KEY,
      logFile: join(dir, "llama-server.log"),
    });
    endpoint = await target.start();
  });
  afterAll(async () => {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends the key to /metrics and /slots; without it the server refuses and the sampler gives nothing", async () => {
    const sampler = await startServerSampler(endpoint, { intervalMs: 20 });
    const client = new StreamClient(endpoint);
    const rec = await client.send(
      { api: "completion", prompt: "hello there", maxTokens: 8, ignoreEos: true, temperature: 0, cachePrompt: false },
      { id: 0, test: "t", scenario: "s", trial: 0, measured: true },
    );
    await client.close();
    const obs = await sampler.stop();
    expect(rec.ok).toBe(true);
    expect(obs?.counters.tokensPredicted).toBe(8);
    expect(obs?.load?.slots).toBeGreaterThan(0);
    expect(obs?.scrapeErrors).toBe(0);

    const { apiKey: _key, ...noKey } = endpoint;
    const refused = await startServerSampler(noKey);
    expect(await refused.stop()).toBeUndefined();
  });
});
