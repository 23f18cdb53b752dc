import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT, spawnSseServer, spawnTsx } from "../../bench/helpers/processes.js";
import { type SseServer, startSseServer } from "../../bench/helpers/sse-server.js";
import { StreamClient } from "../../src/client/stream-client.js";
import type { RequestRecord } from "../../src/measure/record.js";
import type { ApiKind } from "../../src/target/types.js";
import { stopChild } from "../../src/util/children.js";

/**
 * The benchmarks' minimal SSE server (bench/helpers/sse-server.ts) works: tokengate's real client reads every API it
 * serves as it reads llama-server (exact token counts from usage / timings, every content event), non-streaming
 * requests get JSON, the processor-sharing mode shares its capacity, stamps are recorded, and the process wrapper
 * starts and stops it. Nothing here asserts a speed.
 */
let server: SseServer | undefined;
let client: StreamClient | undefined;

afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
});

function send(c: StreamClient, api: ApiKind, prompt: string, maxTokens: number): Promise<RequestRecord> {
  return c.send(
    { api, prompt, maxTokens, ignoreEos: true, temperature: 0, cachePrompt: false },
    { id: 0, test: "bench-sse", scenario: api, trial: 0, measured: true },
  );
}

describe("bench SSE server", () => {
  it("streams every API to tokengate's client with exact token counts, one event per token", async () => {
    server = await startSseServer({ stamp: true });
    client = new StreamClient(server.endpoint);
    for (const api of ["completion", "openai-chat", "openai-completions"] as const) {
      const r = await send(client, api, `hello ${api}`, 7);
      expect(r.ok, r.errorMessage).toBe(true);
      expect(r.outputTokens).toBe(7);
      expect(r.outputTokensSource).toBe(api === "completion" ? "timings" : "usage");
      expect(r.contentEventNs).toHaveLength(7);
      expect(r.firstTokenNs).toBeGreaterThanOrEqual(r.startNs);
      expect(r.serverTimings?.predicted_n).toBe(7);
    }
    const stats = server.stats();
    expect(stats).toMatchObject({ started: 3, completed: 3, tokens: 21, active: 0 });
    const stamps = server.takeStamps();
    expect(Object.keys(stamps).sort()).toEqual(["hello completion", "hello openai-chat", "hello openai-completions"]);
    expect(BigInt(stamps["hello openai-chat"]!)).toBeLessThanOrEqual(process.hrtime.bigint());
    expect(server.takeStamps()).toEqual({});
  });

  it("answers non-streaming requests with llama-server's JSON shapes, and 404 elsewhere", async () => {
    server = await startSseServer({ oneWrite: true });
    const post = (path: string, body: unknown) =>
      fetch(`${server!.url}${path}`, { method: "POST", body: JSON.stringify(body) });
    const completion = (await (await post("/completion", { prompt: "Hello world", max_tokens: 5 })).json()) as {
      content: string;
      tokens_predicted: number;
      stop: boolean;
    };
    expect(completion).toMatchObject({ tokens_predicted: 5, stop: true });
    expect(completion.content.trim().split(" ")).toHaveLength(5);
    const chat = (await (
      await post("/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }], max_tokens: 3 })
    ).json()) as { choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
    expect(chat.usage.completion_tokens).toBe(3);
    expect(chat.choices[0]!.message.content.trim().split(" ")).toHaveLength(3);
    expect((await post("/nope", {})).status).toBe(404);
    // oneWrite streams are still whole streams for the client.
    client = new StreamClient(server.endpoint);
    const r = await send(client, "openai-chat", "one write", 4);
    expect(r.ok, r.errorMessage).toBe(true);
    expect(r.outputTokens).toBe(4);
    expect(r.contentEventNs).toHaveLength(4);
  });

  it("processor sharing: requests beyond the capacity share it, so they take longer than one alone", async () => {
    server = await startSseServer({ tokenIntervalMs: 5, capacity: 1 });
    client = new StreamClient(server.endpoint);
    const e2eMs = (r: RequestRecord) => (r.endNs - r.startNs) / 1e6;
    const alone = await send(client, "openai-chat", "alone", 10);
    const together = await Promise.all([0, 1, 2, 3].map((i) => send(client!, "openai-chat", `together ${i}`, 10)));
    for (const r of [alone, ...together]) expect(r.ok, r.errorMessage).toBe(true);
    // Four requests on a capacity of one: each token gap is four times longer (expect ~4x; 2x leaves room for noise).
    const sharedMs = together.map(e2eMs).sort((a, b) => a - b)[0]!;
    expect(sharedMs).toBeGreaterThan(2 * e2eMs(alone));
    await expect(startSseServer({ capacity: 2 })).rejects.toThrow(/tokenIntervalMs/);
  });

  it("runs in its own process: health, counters, and stopped on stop()", async () => {
    const proc = await spawnSseServer({ defaultTokens: 3 });
    try {
      expect(proc.pid).not.toBe(process.pid);
      expect(await (await fetch(`${proc.url}/health`)).json()).toEqual({ status: "ok" });
      client = new StreamClient(proc.endpoint);
      const r = await send(client, "completion", "from another process", 6);
      expect(r.ok, r.errorMessage).toBe(true);
      const stats = await proc.stats();
      expect(stats).toMatchObject({ started: 1, completed: 1, tokens: 6, active: 0 });
      // The /health fetch and the client each opened one (fetch may reuse its own for /stats).
      expect(stats.connections).toBeGreaterThanOrEqual(2);
    } finally {
      await client?.close();
      client = undefined;
      await proc.stop();
    }
    expect(() => process.kill(proc.pid, 0)).toThrow();
  });

  it("the two floor clients (not tools) read every response to its end on one kept-alive connection per user", async () => {
    for (const helper of ["node-floor-client.ts", "raw-floor-client.ts"]) {
      server = await startSseServer({});
      const options = {
        url: server.url,
        users: 2,
        thinkTimeS: 0,
        durationS: 0,
        tasks: [
          { name: "completion", weight: 1, api: "completion", prompt: "Hello world", maxTokens: 5 },
          { name: "chat", weight: 1, api: "openai-chat", prompt: "Hi", maxTokens: 5 },
        ],
      };
      const child = spawnTsx(join(REPO_ROOT, "bench", "helpers", helper), [JSON.stringify(options)]);
      try {
        const deadline = Date.now() + 30_000;
        const until = async (completed: number) => {
          while (server!.stats().completed < completed && Date.now() < deadline)
            await new Promise((r) => setTimeout(r, 100));
          return server!.stats();
        };
        const first = await until(50);
        const later = await until(first.completed + 100);
        expect(later.completed, helper).toBeGreaterThanOrEqual(first.completed + 100);
        // A client that misread where a response ends would stall, or reconnect for each request. undici may open a
        // second connection per user while the first is being released (seen: 4 for 2 users), then keeps them.
        expect(later.connections, helper).toBe(first.connections);
        expect(first.connections, helper).toBeLessThanOrEqual(helper.startsWith("raw") ? 2 : 4);
        expect(later.tokens, helper).toBeGreaterThanOrEqual(5 * later.completed);
      } finally {
        await stopChild(child, 3000);
        await server.close();
        server = undefined;
      }
    }
  });
});
