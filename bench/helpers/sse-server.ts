import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Endpoint } from "../../src/target/types.js";

/**
 * A minimal LLM-shaped SSE server for benchmarking tokengate itself (not a fault injector, not a model): it answers
 * llama-server's `/completion` and the OpenAI `/v1/chat/completions` and `/v1/completions` with fixed tokens, in the
 * same event shapes and about the same bytes per event as llama-server b1-80fb11a (shared/reference/llama-server/),
 * streaming or not as the request asks. It is meant to cost the client what a real server costs it, and to cost
 * itself as little as possible, so the client is what a benchmark measures:
 *
 * - events are pre-rendered strings (no JSON.stringify per token);
 * - each event is its own write on its own event-loop turn (`setImmediate`, or a timer when `tokenIntervalMs` > 0),
 *   as llama-server writes each token when it is sampled. Writes in one turn would be corked by Node's HTTP server
 *   into one TCP segment and reach the client as one chunk, which would hide the client's per-chunk cost.
 *
 * `capacity` turns it into a server whose capacity the caller controls (for the max-load search benchmark): a
 * processor-sharing server that streams `capacity / tokenIntervalMs` tokens per ms in total, so with `active` requests
 * streaming each token gap is `tokenIntervalMs * max(1, active / capacity)` and a request's latency grows linearly with
 * concurrency beyond `capacity`, like llama-server with `--parallel capacity` once its slots are full.
 *
 * `stamp: true` records, per request, the monotonic time (`process.hrtime.bigint()`, the same clock in every process
 * of the machine) at which its first content event was handed to the socket, keyed by the request's prompt, so a
 * client in another process can measure its own first-token delay (GET /stamps).
 */
export interface SseServerOptions {
  /** Tokens per response when the request does not ask (`n_predict` / `max_tokens`). Default 16. */
  defaultTokens?: number;
  /** Ceiling on tokens per response. Default 4096. */
  maxTokens?: number;
  /** Gap between content events (ms). 0: the next event-loop turn (no timer). Default 0. */
  tokenIntervalMs?: number;
  /** Processor-sharing capacity (see above); needs tokenIntervalMs > 0. Default: none (every request at full speed). */
  capacity?: number;
  /** Record first-content write times by prompt (GET /stamps). Default false. */
  stamp?: boolean;
  /**
   * Write each streamed response in one go (all its events in one write, one chunk at the client) instead of one event
   * per turn: the fastest endpoint, for measuring a scheduler rather than per-token costs. Default false.
   */
  oneWrite?: boolean;
}

/** What GET /stats returns: counters since start. */
export interface SseServerStats {
  /** Requests whose body was read and answered (started streaming). */
  started: number;
  /** Requests whose response ended. */
  completed: number;
  /** Content events (tokens) written, streamed or not. */
  tokens: number;
  /** Requests streaming now. */
  active: number;
  /** TCP connections accepted (a client that reconnects per request shows here). */
  connections: number;
}

export interface SseServer {
  url: string;
  /** An endpoint for tokengate's client: serves all three APIs, no banned tokens. */
  endpoint: Endpoint;
  stats(): SseServerStats;
  /** First-content write times (hrtime ns, as decimal strings) by prompt, then forgets them. */
  takeStamps(): Record<string, string>;
  close(): Promise<void>;
}

type Api = "completion" | "chat" | "text";

const WORDS = [" the", " of", " and", " to", " in", " is", " was", " for"];
// Fields llama-server puts in every chat chunk; fixed here so the bytes per event match a real stream (~230 B).
const CHAT_ID = "chatcmpl-iiFw782aeR4V6KOk74oFjIUVtVRoX5pb";
const CREATED = 1795912988;
const MODEL = "models/tiny-f16.gguf";

function chatChunk(choice: string, tail = ""): string {
  return `data: {"choices":[${choice}],"created":${CREATED},"id":"${CHAT_ID}","model":"${MODEL}","system_fingerprint":"b1-80fb11a","object":"chat.completion.chunk"${tail}}\n\n`;
}

function textChunk(choice: string, tail = ""): string {
  return `data: {"choices":[${choice}],"created":${CREATED},"id":"cmpl-iiFw782aeR4V6KOk74oFjIUVtVRoX5pb","model":"${MODEL}","system_fingerprint":"b1-80fb11a","object":"text_completion"${tail}}\n\n`;
}

function timingsJson(promptN: number, n: number, elapsedMs: number): string {
  const predictedMs = Math.max(0.001, elapsedMs);
  return `{"cache_n":0,"prompt_n":${promptN},"prompt_ms":0.01,"prompt_per_token_ms":0.001,"prompt_per_second":1000000,"predicted_n":${n},"predicted_ms":${predictedMs.toFixed(3)},"predicted_per_token_ms":${(predictedMs / Math.max(1, n - 1)).toFixed(3)},"predicted_per_second":${((1000 * Math.max(0, n - 1)) / predictedMs).toFixed(3)}}`;
}

/** Pre-rendered content events, by API and token index (the /completion event carries a running count). */
class EventCache {
  private readonly completion: string[] = [];
  private readonly chat = WORDS.map((w) =>
    chatChunk(`{"finish_reason":null,"index":0,"delta":{"content":${JSON.stringify(w)}}}`),
  );
  private readonly text = WORDS.map((w) =>
    textChunk(`{"text":${JSON.stringify(w)},"index":0,"logprobs":null,"finish_reason":null}`),
  );

  content(api: Api, i: number): string {
    const w = i % WORDS.length;
    if (api === "chat") return this.chat[w]!;
    if (api === "text") return this.text[w]!;
    let e = this.completion[i];
    if (e === undefined) {
      e = `data: {"index":0,"content":${JSON.stringify(WORDS[w])},"tokens":[${278 + w}],"stop":false,"id_slot":-1,"tokens_predicted":${i + 1},"tokens_evaluated":12}\n\n`;
      this.completion[i] = e;
    }
    return e;
  }
}

function apiOf(url: string | undefined): Api | undefined {
  const path = url?.split("?")[0];
  if (path === "/completion" || path === "/completions") return "completion";
  if (path === "/v1/chat/completions" || path === "/chat/completions") return "chat";
  if (path === "/v1/completions") return "text";
  return undefined;
}

interface Body {
  stream?: boolean;
  n_predict?: number;
  max_tokens?: number;
  prompt?: unknown;
  messages?: Array<{ content?: unknown }>;
}

function promptOf(b: Body): string {
  if (typeof b.prompt === "string") return b.prompt;
  const last = b.messages?.at(-1)?.content;
  return typeof last === "string" ? last : "";
}

export async function startSseServer(o: SseServerOptions = {}): Promise<SseServer> {
  const defaultTokens = o.defaultTokens ?? 16;
  const maxTokens = o.maxTokens ?? 4096;
  const intervalMs = o.tokenIntervalMs ?? 0;
  if (o.capacity !== undefined && !(o.capacity > 0 && intervalMs > 0)) {
    throw new RangeError("capacity needs a positive capacity and tokenIntervalMs > 0");
  }
  const events = new EventCache();
  const stats: SseServerStats = { started: 0, completed: 0, tokens: 0, active: 0, connections: 0 };
  let stamps: Record<string, string> = {};
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const gapMs = () => (o.capacity === undefined ? intervalMs : intervalMs * Math.max(1, stats.active / o.capacity));
  const after = (fn: () => void) => {
    const ms = gapMs();
    if (ms <= 0) {
      setImmediate(fn);
      return;
    }
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const answerAtOnce = (api: Api, n: number, promptN: number, prompt: string, res: ServerResponse) => {
    stats.started++;
    const parts: string[] = [];
    if (api === "chat") {
      parts.push(chatChunk(`{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}`));
    }
    for (let i = 0; i < n; i++) parts.push(events.content(api, i));
    if (api === "completion") {
      parts.push(
        `data: {"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"model":"${MODEL}","tokens_predicted":${n},"tokens_evaluated":${promptN},"stop_type":"limit","timings":${timingsJson(promptN, n, 0)}}\n\n`,
      );
    } else {
      const mk = api === "chat" ? chatChunk : textChunk;
      const fin =
        api === "chat"
          ? `{"finish_reason":"length","index":0,"delta":{}}`
          : `{"text":"","index":0,"logprobs":null,"finish_reason":"length"}`;
      parts.push(mk(fin));
      parts.push(
        mk(
          "",
          `,"usage":{"completion_tokens":${n},"prompt_tokens":${promptN},"total_tokens":${n + promptN}},"timings":${timingsJson(promptN, n, 0)}`,
        ),
      );
      parts.push("data: [DONE]\n\n");
    }
    const text = parts.join("");
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
    if (o.stamp) stamps[prompt] = process.hrtime.bigint().toString();
    stats.tokens += n;
    stats.completed++;
  };

  const answer = (api: Api, body: Body, res: ServerResponse) => {
    const requested = body.n_predict ?? body.max_tokens;
    const n = Math.max(
      1,
      Math.min(maxTokens, typeof requested === "number" && requested > 0 ? requested : defaultTokens),
    );
    const stream = body.stream === true;
    const prompt = promptOf(body);
    const promptN = Math.max(1, prompt.split(" ").length);
    if (stream && o.oneWrite) {
      answerAtOnce(api, n, promptN, prompt, res);
      return;
    }
    const t0 = performance.now();
    stats.started++;
    stats.active++;
    if (stream) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      // Headers go out with the first event, as llama-server sends them (first byte = first token).
    }
    let i = 0;
    const finish = () => {
      stats.active--;
      stats.completed++;
      const timings = timingsJson(promptN, n, performance.now() - t0);
      if (!stream) {
        const content = Array.from({ length: n }, (_, k) => WORDS[k % WORDS.length]).join("");
        const usage = `{"completion_tokens":${n},"prompt_tokens":${promptN},"total_tokens":${n + promptN}}`;
        const json =
          api === "completion"
            ? `{"index":0,"content":${JSON.stringify(content)},"tokens":[],"stop":true,"tokens_predicted":${n},"tokens_evaluated":${promptN},"stop_type":"limit","timings":${timings}}`
            : api === "chat"
              ? `{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant","content":${JSON.stringify(content)}}}],"created":${CREATED},"id":"${CHAT_ID}","model":"${MODEL}","object":"chat.completion","usage":${usage},"timings":${timings}}`
              : `{"choices":[{"text":${JSON.stringify(content)},"index":0,"logprobs":null,"finish_reason":"length"}],"created":${CREATED},"model":"${MODEL}","object":"text_completion","usage":${usage},"timings":${timings}}`;
        res.writeHead(200, {
          "content-type": "application/json; charset=utf-8",
          "content-length": Buffer.byteLength(json),
        });
        res.end(json);
        return;
      }
      if (api === "completion") {
        res.end(
          `data: {"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"model":"${MODEL}","tokens_predicted":${n},"tokens_evaluated":${promptN},"stop_type":"limit","timings":${timings}}\n\n`,
        );
        return;
      }
      const usage = `,"usage":{"completion_tokens":${n},"prompt_tokens":${promptN},"total_tokens":${n + promptN},"prompt_tokens_details":{"cached_tokens":0}},"timings":${timings}`;
      const mk = api === "chat" ? chatChunk : textChunk;
      const fin =
        api === "chat"
          ? `{"finish_reason":"length","index":0,"delta":{}}`
          : `{"text":"","index":0,"logprobs":null,"finish_reason":"length"}`;
      res.write(mk(fin));
      res.write(mk("", usage));
      res.end("data: [DONE]\n\n");
    };
    const next = () => {
      if (res.destroyed) {
        stats.active--;
        return;
      }
      if (i >= n) {
        finish();
        return;
      }
      if (stream) {
        if (i === 0 && api === "chat") {
          // llama-server's first chat chunk: the role, with the first token (FACTS.md).
          res.write(chatChunk(`{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}`));
        }
        res.write(events.content(api, i));
        if (i === 0 && o.stamp) stamps[prompt] = process.hrtime.bigint().toString();
      }
      stats.tokens++;
      i++;
      after(next);
    };
    // The first token comes after one gap too: a "prompt" that costs what a token costs.
    after(next);
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "GET") {
      req.resume();
      const path = req.url?.split("?")[0];
      const json = (v: unknown) => {
        const s = JSON.stringify(v);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(s);
      };
      if (path === "/health") return json({ status: "ok" });
      if (path === "/stats") return json(stats);
      if (path === "/stamps") {
        const out = stamps;
        stamps = {};
        return json(out);
      }
      res.writeHead(404).end();
      return;
    }
    const api = apiOf(req.url);
    if (req.method !== "POST" || !api) {
      req.resume();
      res.writeHead(404, { "content-type": "application/json" });
      res.end(`{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}`);
      return;
    }
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      let body: Body;
      try {
        body = JSON.parse(Buffer.concat(parts).toString("utf8")) as Body;
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(`{"error":{"code":400,"message":"invalid JSON","type":"invalid_request_error"}}`);
        return;
      }
      answer(api, body, res);
    });
  });
  // Keep-alive longer than any client's pool timeout, so the benchmark never measures reconnects the server forced.
  server.keepAliveTimeout = 60_000;
  server.on("connection", (s: Socket) => {
    s.setNoDelay(true);
    stats.connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    endpoint: {
      baseUrl: url,
      apis: ["completion", "openai-completions", "openai-chat"],
      modelName: "bench-sse",
      bannedTokenIds: [],
    },
    stats: () => ({ ...stats }),
    takeStamps: () => {
      const out = stamps;
      stamps = {};
      return out;
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
