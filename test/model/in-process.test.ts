import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInProcessTarget, type InProcessTarget } from "../../src/target/in-process/target.js";
import type { Endpoint } from "../../src/target/types.js";
import { liveChildCount } from "../../src/util/children.js";
import { BadInputError } from "../../src/util/errors.js";
import { tinyModel } from "../helpers/models.js";
import { pidAlive } from "../helpers/processes.js";

// biome-ignore lint/suspicious/noExplicitAny: the tests read server JSON loosely; each field read is asserted
type Json = Record<string, any>;

interface StreamResult {
  status: number;
  events: Json[];
  done: boolean;
  /** performance.now() of the first event with generated text, and of the end of the stream. */
  firstTokenMs: number | undefined;
  endMs: number;
  text: string;
}

async function post(ep: Endpoint, path: string, body: unknown): Promise<{ status: number; json: Json }> {
  const r = await request(`${ep.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: r.statusCode, json: (await r.body.json()) as Json };
}

/** Streams an SSE response, recording when the first generated text arrived. */
async function stream(ep: Endpoint, path: string, body: Json): Promise<StreamResult> {
  const r = await request(`${ep.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const events: Json[] = [];
  let done = false;
  let firstTokenMs: number | undefined;
  let buffer = "";
  let text = "";
  for await (const chunk of r.body) {
    buffer += (chunk as Buffer).toString("utf8");
    let cut = buffer.indexOf("\n\n");
    while (cut >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      cut = buffer.indexOf("\n\n");
      expect(raw.startsWith("data: ")).toBe(true);
      const data = raw.slice("data: ".length);
      if (data === "[DONE]") {
        done = true;
        continue;
      }
      const event = JSON.parse(data) as Json;
      events.push(event);
      const piece = event.choices?.[0]?.delta?.content ?? event.choices?.[0]?.text;
      if (typeof piece === "string" && piece !== "") {
        firstTokenMs ??= performance.now();
        text += piece;
      }
    }
  }
  return { status: r.statusCode, events, done, firstTokenMs, endMs: performance.now(), text };
}

async function stats(ep: Endpoint): Promise<Json> {
  const r = await request(`${ep.baseUrl}/tokengate/stats`);
  return (await r.body.json()) as Json;
}

let model: string;
const dir = mkdtempSync(join(tmpdir(), "tokengate-in-process-test-"));
/** Bans the lone byte tokens random weights emit (shared/FACTS.md), as the load generator does. */
let banned: Record<string, number>;

beforeAll(async () => {
  model = await tinyModel();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("in-process target (real node-llama-cpp, tiny model)", () => {
  let target: InProcessTarget;
  let ep: Endpoint;

  beforeAll(async () => {
    // One thread: ggml's threadpool spins at every barrier, so two threads on a 2-core machine that also runs the
    // test process (and other work) are far slower than one (options.ts `defaultThreads`).
    target = createInProcessTarget({
      modelPath: model,
      threads: 1,
      sequences: 4,
      contextSize: 512,
      logFile: join(dir, "main.log"),
    });
    ep = await target.start();
    banned = Object.fromEntries(ep.bannedTokenIds.map((id) => [String(id), -100]));
  });
  afterAll(async () => {
    await target?.stop();
  });

  it("starts healthy on 127.0.0.1 and fingerprints node-llama-cpp and its options", async () => {
    expect(ep.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ep.apis).toEqual(["openai-completions", "openai-chat"]);
    expect(ep.bannedTokenIds.length).toBeGreaterThan(0);
    expect(target.alive()).toBe(true);
    const health = await request(`${ep.baseUrl}/health`);
    expect(health.statusCode).toBe(200);
    expect(await health.body.json()).toEqual({ status: "ok" });
    const models = (await (await request(`${ep.baseUrl}/v1/models`)).body.json()) as Json;
    expect(models.data[0].id).toBe(ep.modelName);

    const fp = await target.fingerprint();
    expect(fp.kind).toBe("in-process");
    expect(fp.build).toBe("node-llama-cpp@3.21.1+llama.cpp@v0.4.0");
    expect(fp.model?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fp.model?.synthetic).toBe(true);
    expect(fp.details).toMatchObject({
      threads: 1,
      sequences: 4,
      contextSize: 512,
      batching: false,
      responseCache: false,
    });
  });

  it("streams chat: role first, exactly max_tokens tokens, usage and timings, then [DONE]", async () => {
    const r = await stream(ep, "/v1/chat/completions", {
      messages: [{ role: "user", content: "Tell me a story" }],
      max_tokens: 24,
      ignore_eos: true,
      logit_bias: banned,
      stream_options: { include_usage: true },
    });
    expect(r.status).toBe(200);
    expect(r.done).toBe(true);
    expect(r.events[0]?.choices[0].delta).toEqual({ role: "assistant", content: null });
    expect(r.text.length).toBeGreaterThan(0);
    const finish = r.events.at(-2)!;
    expect(finish.choices[0].finish_reason).toBe("length");
    const last = r.events.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage.completion_tokens).toBe(24);
    expect(last.usage.total_tokens).toBe(last.usage.prompt_tokens + 24);
    expect(last.timings.predicted_n).toBe(24);
    expect(last.timings.prompt_n + last.timings.cache_n).toBe(last.usage.prompt_tokens);
    expect(r.events.every((e) => e.object === "chat.completion.chunk" && e.id === r.events[0]!.id)).toBe(true);
  });

  it("streams /v1/completions with exact completion_tokens, also without include_usage", async () => {
    const withUsage = await stream(ep, "/v1/completions", {
      prompt: "Once upon a time",
      max_tokens: 16,
      ignore_eos: true,
      logit_bias: banned,
      stream_options: { include_usage: true },
    });
    expect(withUsage.done).toBe(true);
    expect(withUsage.events.at(-1)!.usage.completion_tokens).toBe(16);
    expect(withUsage.events.at(-2)!.choices[0]).toMatchObject({ text: "", finish_reason: "length" });

    // Without include_usage, the last chunk carries finish_reason and (like llama-server's /v1/completions) usage.
    const plain = await stream(ep, "/v1/completions", {
      prompt: "Once upon a time",
      max_tokens: 10,
      ignore_eos: true,
      logit_bias: banned,
    });
    const last = plain.events.at(-1)!;
    expect(last.choices[0].finish_reason).toBe("length");
    expect(last.usage.completion_tokens).toBe(10);
    expect(last.timings.predicted_n).toBe(10);
  });

  it("answers without streaming", async () => {
    const chat = await post(ep, "/v1/chat/completions", {
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 12,
      ignore_eos: true,
      logit_bias: banned,
    });
    expect(chat.status).toBe(200);
    expect(chat.json.object).toBe("chat.completion");
    expect(chat.json.choices[0].message.role).toBe("assistant");
    expect(typeof chat.json.choices[0].message.content).toBe("string");
    expect(chat.json.usage.completion_tokens).toBe(12);

    const cmpl = await post(ep, "/v1/completions", { prompt: "hi", max_tokens: 5, ignore_eos: true });
    expect(cmpl.status).toBe(200);
    expect(cmpl.json.choices[0].finish_reason).toBe("length");
    expect(cmpl.json.usage.completion_tokens).toBe(5);
  });

  it("runs four concurrent requests together: their generation intervals overlap", async () => {
    const before = await stats(ep);
    const results = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        stream(ep, "/v1/completions", {
          prompt: `Request number ${i} says`,
          // Long enough (about a second here) that a busy test machine's jitter in sending cannot separate them.
          max_tokens: 256,
          ignore_eos: true,
          logit_bias: banned,
          stream_options: { include_usage: true },
        }),
      ),
    );
    for (const r of results) {
      expect(r.events.at(-1)!.usage.completion_tokens).toBe(256);
      expect(r.firstTokenMs).toBeDefined();
    }
    // Overlap of all four [first token, end] intervals: the last first token came before the first end.
    const lastFirstToken = Math.max(...results.map((r) => r.firstTokenMs!));
    const firstEnd = Math.min(...results.map((r) => r.endMs));
    expect(lastFirstToken).toBeLessThan(firstEnd);
    const after = await stats(ep);
    expect(after.modelRuns - before.modelRuns).toBe(4);
    expect(after.active).toBe(0);
  });

  it("stops at a stop string, with finish_reason stop", async () => {
    // cache_prompt off: the same prompt is evaluated the same way twice, so greedy decoding gives the same tokens.
    const body = {
      prompt: "The weather today",
      max_tokens: 24,
      ignore_eos: true,
      temperature: 0,
      cache_prompt: false,
      logit_bias: banned,
    };
    const full = await post(ep, "/v1/completions", body);
    const text = full.json.choices[0].text as string;
    expect(text.length).toBeGreaterThan(12);
    // A piece from the middle of the first answer is a stop string for the second.
    const stop = text.slice(6, 10);
    const cut = await post(ep, "/v1/completions", { ...body, stop: [stop] });
    expect(cut.json.choices[0].finish_reason).toBe("stop");
    expect(cut.json.choices[0].text).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.json.usage.completion_tokens).toBeLessThan(24);
  });

  it("answers bad requests with 400 and an OpenAI-style error body", async () => {
    const badJson = await post(ep, "/v1/completions", "{not json");
    expect(badJson.status).toBe(400);
    expect(badJson.json.error).toMatchObject({ code: 400, type: "invalid_request_error" });
    expect(badJson.json.error.message).toMatch(/JSON/);

    const noMessages = await post(ep, "/v1/chat/completions", { max_tokens: 4 });
    expect(noMessages.status).toBe(400);
    expect(noMessages.json.error.param).toBe("messages");

    const badBias = await post(ep, "/v1/completions", { prompt: "x", logit_bias: { "999999": -100 } });
    expect(badBias.status).toBe(400);
    expect(badBias.json.error.param).toBe("logit_bias");

    const tooLong = await post(ep, "/v1/completions", { prompt: "word ".repeat(600), max_tokens: 4 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.error.type).toBe("exceed_context_size_error");

    const notFound = await request(`${ep.baseUrl}/v1/nothing`);
    expect(notFound.statusCode).toBe(404);
    await notFound.body.dump();
    const wrongMethod = await request(`${ep.baseUrl}/v1/completions`);
    expect(wrongMethod.statusCode).toBe(405);
    await wrongMethod.body.dump();
  });

  it("admits a new request while other generations run, and a disconnect stops a generation", async () => {
    // Use every sequence once (four at once take all four), so the request below must clear a used one.
    await Promise.all([0, 1, 2, 3].map((i) => post(ep, "/v1/completions", { prompt: `warm ${i}`, max_tokens: 2 })));
    const ac = new AbortController();
    // Two generations of far more tokens than this test could wait for: only the disconnect can end them.
    const longs = await Promise.all(
      [0, 1].map(async (i) => {
        const r = await request(`${ep.baseUrl}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: `Go on ${i}`, max_tokens: 1_000_000, ignore_eos: true, stream: true }),
          signal: ac.signal,
        });
        // Read by hand: leaving a for-await loop early would close the connection already.
        const chunks = r.body[Symbol.asyncIterator]();
        for (;;) {
          const c = await chunks.next();
          if (c.done || (c.value as Buffer).toString().includes('"text"')) break;
        }
        return chunks;
      }),
    );
    expect((await stats(ep)).active).toBe(2);

    // This request must clear a used sequence while two generations decode; node-llama-cpp would keep its lock from
    // it until both had finished (engine.ts `admit`), and then this would time out.
    const short = await post(ep, "/v1/completions", { prompt: "meanwhile", max_tokens: 8, ignore_eos: true });
    expect(short.json.usage.completion_tokens).toBe(8);
    expect((await stats(ep)).active).toBe(2);

    ac.abort();
    await Promise.allSettled(longs.map((c) => c.return?.()));
    let active = 2;
    for (let i = 0; i < 200 && active !== 0; i++) {
      await sleep(50);
      active = (await stats(ep)).active;
    }
    expect(active).toBe(0);
  });
});

describe("in-process switches: response cache and the seed's batching", () => {
  let target: InProcessTarget;
  let ep: Endpoint;

  beforeAll(async () => {
    target = createInProcessTarget({
      modelPath: model,
      threads: 1,
      sequences: 2,
      contextSize: 256,
      batching: { maxBatchSize: 2, maxWaitMs: 20 },
      responseCache: true,
      logFile: join(dir, "switches.log"),
    });
    ep = await target.start();
  });
  afterAll(async () => {
    await target?.stop();
  });

  it("records both switches in the fingerprint and the stats", async () => {
    const fp = await target.fingerprint();
    expect(fp.details).toMatchObject({ batching: true, batchMaxSize: 2, batchMaxWaitMs: 20, responseCache: true });
    expect(await stats(ep)).toMatchObject({ batching: true, responseCache: true, sequences: 2 });
  });

  it("serves a repeated temperature-0 request from the cache, still as a stream, without running the model", async () => {
    const body = {
      messages: [{ role: "user", content: "cache me" }],
      max_tokens: 20,
      ignore_eos: true,
      temperature: 0,
      logit_bias: banned,
      stream_options: { include_usage: true },
    };
    const before = await stats(ep);
    const first = await stream(ep, "/v1/chat/completions", body);
    const second = await stream(ep, "/v1/chat/completions", body);
    const after = await stats(ep);
    expect(after.modelRuns - before.modelRuns).toBe(1);
    expect(after.cacheHits - before.cacheHits).toBe(1);
    expect(second.text).toBe(first.text);
    expect(second.events[0]?.choices[0].delta.role).toBe("assistant");
    expect(second.events.at(-1)!.usage.completion_tokens).toBe(20);
    expect(second.events.at(-1)!.timings.prompt_n).toBe(0);
    expect(second.done).toBe(true);

    // Sampled requests are never cached.
    await post(ep, "/v1/chat/completions", { ...body, temperature: 0.8, stream: false });
    await post(ep, "/v1/chat/completions", { ...body, temperature: 0.8, stream: false });
    expect((await stats(ep)).modelRuns - after.modelRuns).toBe(2);
  });

  it("batches concurrent requests behind the gate and still gives exact counts", async () => {
    const results = await Promise.all(
      [0, 1, 2].map((i) =>
        stream(ep, "/v1/completions", {
          prompt: `batch ${i}`,
          max_tokens: 12,
          ignore_eos: true,
          logit_bias: banned,
          stream_options: { include_usage: true },
        }),
      ),
    );
    expect(results.map((r) => r.events.at(-1)!.usage.completion_tokens)).toEqual([12, 12, 12]);
  });
});

describe("in-process target lifecycle", () => {
  it("stop() leaves no child process, and is idempotent", async () => {
    const before = liveChildCount();
    const target = createInProcessTarget({ modelPath: model, threads: 1, sequences: 1, contextSize: 128 });
    await target.start();
    expect(liveChildCount()).toBe(before + 1);
    const pid = target.pid()!;
    expect(pidAlive(pid)).toBe(true);
    await target.stop();
    await target.stop();
    expect(pidAlive(pid)).toBe(false);
    expect(target.alive()).toBe(false);
    expect(liveChildCount()).toBe(before);
  });

  it("a file that is not a model fails fast with BadInputError naming it, and leaves no child", async () => {
    const bad = join(dir, "not-a-model.gguf");
    writeFileSync(bad, "this is not a GGUF file at all, just text");
    const before = liveChildCount();
    await using target = createInProcessTarget({ modelPath: bad, threads: 1 });
    const err = await target.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).subject).toBe(bad);
    expect(target.alive()).toBe(false);
    expect(liveChildCount()).toBe(before);
  });

  it("a GGUF that node-llama-cpp cannot load: BadInputError with llama.cpp's reason, and no child left", async () => {
    // The tiny model with llama.block_count raised by one: a well-formed file (inspectModel accepts it) whose layer 2
    // does not exist, so only llama.cpp, in the child, finds the problem.
    const bytes = readFileSync(model);
    const key = Buffer.from("llama.block_count");
    const at = bytes.indexOf(key) + key.length;
    expect(bytes.readUInt32LE(at)).toBe(4); // GGUF value type uint32
    bytes.writeUInt32LE(bytes.readUInt32LE(at + 4) + 1, at + 4);
    const broken = join(dir, "missing-layer.gguf");
    writeFileSync(broken, bytes);
    const before = liveChildCount();
    await using target = createInProcessTarget({ modelPath: broken, threads: 1, contextSize: 128 });
    const err = await target.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).subject).toBe(broken);
    expect((err as BadInputError).message).toMatch(/node-llama-cpp cannot load this model.*blk\.2/);
    expect(liveChildCount()).toBe(before);
  });
});
