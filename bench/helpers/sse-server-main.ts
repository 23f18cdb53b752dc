import { type SseServerOptions, startSseServer } from "./sse-server.js";

/**
 * The SSE server in its own process (spawned by processes.ts), so its CPU is not the client's and its event loop does
 * not delay the client's timestamps. argv[2]: the options as JSON. Prints one line `{"url": ...}` when listening;
 * stops on SIGTERM / SIGINT or when its parent's stdin closes (a parent that died never leaves it behind).
 */
const opts = JSON.parse(process.argv[2] ?? "{}") as SseServerOptions;
const server = await startSseServer(opts);
process.stdout.write(`${JSON.stringify({ url: server.url, pid: process.pid })}\n`);
let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  void server.close().finally(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
