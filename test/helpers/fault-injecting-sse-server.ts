import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A fault-injecting stand-in, named as such: it produces stream faults a real llama-server cannot be made to produce
 * on demand. It speaks the OpenAI chat streaming format. Modes:
 * - `error-mid-stream`: some content, then `data: {"error": ...}` (what llama-server does on invalid UTF-8, but only
 *   at random);
 * - `close-mid-stream`: some content, then the socket is destroyed without a final event;
 * - `garbage`: an event that is not JSON;
 * - `stall`: some content, then silence (the client's stall timeout must end it);
 * - `reset-first-request`: the first request's connection is closed before any response byte (the keep-alive race);
 *   later requests get a complete stream.
 */
export type Fault = "error-mid-stream" | "close-mid-stream" | "garbage" | "stall" | "reset-first-request";

export interface FaultInjectingServer {
  url: string;
  close(): Promise<void>;
}

export async function startFaultInjectingSseServer(
  fault: Fault,
): Promise<FaultInjectingServer & { requests(): number }> {
  const sockets = new Set<import("node:net").Socket>();
  let requests = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      requests++;
      if (fault === "reset-first-request" && requests === 1) {
        res.socket?.destroy();
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      const chunk = (content: string) =>
        `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
      res.write(chunk("hello"));
      res.write(chunk(" world"));
      if (fault === "error-mid-stream") {
        res.end(
          `data: ${JSON.stringify({ error: { code: 500, message: "injected: invalid UTF-8", type: "server_error" } })}\n\n`,
        );
      } else if (fault === "close-mid-stream") {
        res.socket?.destroy();
      } else if (fault === "garbage") {
        res.end("data: {not json\n\n");
      } else if (fault === "reset-first-request") {
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "length" }] })}\n\n`);
        res.end("data: [DONE]\n\n");
      }
      // stall: write nothing more; the socket stays open until close().
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
