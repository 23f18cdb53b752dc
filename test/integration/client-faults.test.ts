import { afterEach, describe, expect, it } from "vitest";
import { StreamClient } from "../../src/client/stream-client.js";
import type { Endpoint } from "../../src/target/types.js";
import type { GenerationRequest } from "../../src/workload/request-builder.js";
import { type FaultInjectingServer, startFaultInjectingSseServer } from "../helpers/fault-injecting-sse-server.js";

const gen: GenerationRequest = {
  api: "openai-chat",
  prompt: "hi",
  maxTokens: 8,
  ignoreEos: true,
  temperature: 0,
  cachePrompt: false,
};
const meta = { id: 1, test: "t", scenario: "s", trial: 0, measured: true };
let server: FaultInjectingServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

function endpoint(url: string): Endpoint {
  return { baseUrl: url, apis: ["openai-chat"], modelName: "m", bannedTokenIds: [] };
}

describe("stream faults become failed request records, never exceptions or hangs", () => {
  it("an error event after some content is a failed request (class stream) that keeps its timings", async () => {
    server = await startFaultInjectingSseServer("error-mid-stream");
    const client = new StreamClient(endpoint(server.url));
    const r = await client.send(gen, meta);
    await client.close();
    expect(r.ok).toBe(false);
    expect(r.errorClass).toBe("stream");
    expect(r.errorMessage).toContain("injected: invalid UTF-8");
    expect(r.firstTokenNs).toBeGreaterThan(r.startNs);
    expect(r.contentEventNs).toHaveLength(2);
  });

  it("a connection closed before the final event is a failed request", async () => {
    server = await startFaultInjectingSseServer("close-mid-stream");
    const client = new StreamClient(endpoint(server.url));
    const r = await client.send(gen, meta);
    await client.close();
    expect(r.ok).toBe(false);
    expect(r.errorClass).toBe("stream");
  });

  it("an event that is not JSON is a parse error", async () => {
    server = await startFaultInjectingSseServer("garbage");
    const client = new StreamClient(endpoint(server.url));
    const r = await client.send(gen, meta);
    await client.close();
    expect(r.ok).toBe(false);
    expect(r.errorClass).toBe("parse");
  });

  it("a stalled stream ends as a timeout after the stall timeout", async () => {
    server = await startFaultInjectingSseServer("stall");
    // undici's timers tick at ~500 ms resolution, so a 1 s stall timeout fires within about 1-2 s.
    const client = new StreamClient(endpoint(server.url), { stallTimeoutMs: 1000 });
    const r = await client.send(gen, meta);
    await client.close();
    expect(r.ok).toBe(false);
    expect(r.errorClass).toBe("timeout");
    expect((r.endNs - r.startNs) / 1e9).toBeLessThan(10);
  });

  it("a refused connection is a connect error, and a cancelled request says so", async () => {
    const client = new StreamClient(endpoint("http://127.0.0.1:1"));
    const r = await client.send(gen, meta);
    expect(r.errorClass).toBe("connect");
    server = await startFaultInjectingSseServer("stall");
    const c2 = new StreamClient(endpoint(server.url));
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop")), 200);
    const r2 = await c2.send(gen, meta, ac.signal);
    expect(r2.errorClass).toBe("cancelled");
    await Promise.all([client.close(), c2.close()]);
  });

  it("a connection closed before any response byte is retried once and the record says so", async () => {
    const s = await startFaultInjectingSseServer("reset-first-request");
    server = s;
    const client = new StreamClient(endpoint(s.url));
    const r = await client.send(gen, meta);
    await client.close();
    expect(r.ok).toBe(true);
    expect(r.retried).toBe(true);
    expect(s.requests()).toBe(2);
    expect(r.contentEventNs).toHaveLength(2);
  });
});
