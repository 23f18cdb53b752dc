import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * A fault-injecting server, named as such: it answers HTTP 503 "Loading model" (llama-server's answer while it loads a
 * model) for as long as a test chooses, then 200, which a real llama-server does only for as long as its model takes to
 * load (milliseconds for the tiny test models). Only the readiness endpoints: `/v1/models` and `/health`; everything
 * else is 404. Listens on 127.0.0.1, on port 0 or the port given (a server that comes up late at a known address).
 */
export interface LoadingServerOptions {
  /** Answers 503 for this long after the first request. Default 0 (ready at once). */
  loadingMs?: number;
  /** Port to listen on. Default 0 (any free port). */
  port?: number;
}

export interface LoadingServer {
  url: string;
  /** Answers given so far, by status. */
  answered: { 503: number; 200: number };
  close(): Promise<void>;
}

export async function startFaultInjectingLoadingServer(o: LoadingServerOptions = {}): Promise<LoadingServer> {
  let firstAt: number | undefined;
  const answered = { 503: 0, 200: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    req.resume();
    firstAt ??= performance.now();
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/v1/models" && path !== "/health") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
      return;
    }
    if (performance.now() - firstAt < (o.loadingMs ?? 0)) {
      answered[503]++;
      res
        .writeHead(503, { "content-type": "application/json" })
        .end('{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}');
      return;
    }
    answered[200]++;
    const body = path === "/health" ? { status: "ok" } : { object: "list", data: [{ id: "loading-server-model" }] };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    answered,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
