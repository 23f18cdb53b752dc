import { Agent, type Dispatcher } from "undici";
import { interpretEvent } from "../../src/client/events.js";
import { SseParser } from "../../src/client/sse.js";
import type { TokengateLoadOptions } from "./tokengate-load.js";

/**
 * Not a load tool: the floor under any Node.js streaming client, for the client-overhead benchmark. It does the least a
 * client that times tokens must do (one keep-alive connection per user, one timestamp per chunk, tokengate's SSE
 * parser and event interpreter) on undici's lowest-level API, `dispatch` with a handler: no Readable body stream, no
 * async iterator, no abort signals, no records, no scheduler. The gap between this and tokengate is what tokengate's
 * own code costs; what this costs is Node's event loop, undici's HTTP parser and the kernel, per chunk.
 * argv[2]: the same options as tokengate-load.ts. Runs until killed.
 */
const o = JSON.parse(process.argv[2] ?? "{}") as TokengateLoadOptions;
const agent = new Agent({ pipelining: 1, keepAliveTimeout: 30_000 });
const origin = new URL(o.url).origin;
const total = o.tasks.reduce((s, t) => s + t.weight, 0);

function bodyOf(t: TokengateLoadOptions["tasks"][number]): { path: string; body: string } {
  if (t.api === "completion") {
    return { path: "/completion", body: JSON.stringify({ prompt: t.prompt, n_predict: t.maxTokens, stream: true }) };
  }
  return {
    path: "/v1/chat/completions",
    body: JSON.stringify({
      messages: [{ role: "user", content: t.prompt }],
      max_tokens: t.maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    }),
  };
}

function one(t: TokengateLoadOptions["tasks"][number]): Promise<number> {
  const { path, body } = bodyOf(t);
  return new Promise((resolve, reject) => {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    let tokens = 0;
    let firstNs = 0;
    const handler: Dispatcher.DispatchHandler = {
      onConnect: () => undefined,
      onError: reject,
      onHeaders: () => true,
      onData: (chunk: Buffer) => {
        const atNs = Number(process.hrtime.bigint());
        for (const ev of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (interpretEvent(t.api, ev.data).content) {
            tokens++;
            if (!firstNs) firstNs = atNs;
          }
        }
        return true;
      },
      onComplete: () => resolve(tokens),
    };
    agent.dispatch({ origin, path, method: "POST", body, headers: { "content-type": "application/json" } }, handler);
  });
}

function pick(): TokengateLoadOptions["tasks"][number] {
  let x = Math.random() * total;
  for (const t of o.tasks) {
    x -= t.weight;
    if (x < 0) return t;
  }
  return o.tasks[0]!;
}

async function user(): Promise<void> {
  for (;;) {
    await one(pick());
    const think = Array.isArray(o.thinkTimeS)
      ? o.thinkTimeS[0] + Math.random() * (o.thinkTimeS[1] - o.thinkTimeS[0])
      : o.thinkTimeS;
    if (think > 0) await new Promise((r) => setTimeout(r, think * 1000));
  }
}

process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
for (let u = 0; u < o.users; u++) void user();
