import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Endpoint } from "../../src/target/types.js";

/**
 * A fault-injecting SSE server, named as such: it stalls chosen responses in the middle of their stream for a chosen
 * time (or for ever), which a real llama-server cannot be made to do on demand. Otherwise it answers
 * `/v1/chat/completions` like llama-server does when streaming: content deltas, a finish_reason chunk, a usage chunk,
 * `[DONE]`. Fast by default (a few tokens 1 ms apart), so the stalls are what a test sees.
 */
export interface StallServerOptions {
  /** Content events per response. Default 4. */
  tokens?: number;
  /** Gap between content events (ms). Default 1. */
  tokenIntervalMs?: number;
  /** Stall (ms) of the response to the request with this arrival index (0-based); 0 none, Infinity for ever. */
  stallMs?: (index: number) => number;
  /**
   * Responses streamed at once; later requests wait in a FIFO for a free slot (like llama-server's `--parallel`), so
   * the server has a capacity of slots / response time. Default: unlimited.
   */
  slots?: number;
}

export interface StallServer {
  url: string;
  endpoint: Endpoint;
  /** Requests received so far. */
  received(): number;
  close(): Promise<void>;
}

export async function startFaultInjectingStallServer(o: StallServerOptions = {}): Promise<StallServer> {
  const tokens = o.tokens ?? 4;
  const gapMs = o.tokenIntervalMs ?? 1;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let received = 0;
  let busy = 0;
  const waiting: Array<() => void> = [];
  const release = () => {
    busy--;
    waiting.shift()?.();
  };
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const index = received++;
    req.resume();
    req.on("end", () => {
      if (o.slots === undefined) return respond();
      let holding = false;
      const acquire = () => {
        holding = true;
        busy++;
        respond();
      };
      res.on("close", () => {
        if (holding) return release();
        const i = waiting.indexOf(acquire);
        if (i >= 0) waiting.splice(i, 1); // the client gave up while waiting for a slot
      });
      if (busy < o.slots) acquire();
      else waiting.push(acquire);
    });
    const respond = () => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      const event = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
      const delta = (content: string) => event({ choices: [{ index: 0, delta: { content }, finish_reason: null }] });
      const stall = o.stallMs?.(index) ?? 0;
      const stallAt = Math.floor(tokens / 2);
      let sent = 0;
      const next = () => {
        if (res.destroyed) return;
        if (sent < tokens) {
          delta(` tok${sent}`);
          sent++;
          if (sent === stallAt && stall > 0) {
            if (Number.isFinite(stall)) later(stall, next);
            return; // Infinity: silent until the client gives up or close() ends it
          }
          later(gapMs, next);
          return;
        }
        event({ choices: [{ index: 0, delta: {}, finish_reason: "length" }] });
        event({ choices: [], usage: { completion_tokens: tokens, prompt_tokens: 5, total_tokens: tokens + 5 } });
        res.end("data: [DONE]\n\n");
      };
      next();
    };
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    endpoint: { baseUrl: url, apis: ["openai-chat"], modelName: "fault-injecting", bannedTokenIds: [] },
    received: () => received,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
