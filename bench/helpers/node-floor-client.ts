import { Agent, type Dispatcher } from "undici";
import { interpretEvent } from "../../src/client/events.js";
import { SseParser } from "../../src/client/sse.js";
import { bodyOf, type FloorTask, floorOptions, runFloorUsers } from "./floor-common.js";

/**
 * Not a load tool: the floor under any Node.js streaming client, for the client-overhead benchmark. It does the least a
 * client that times tokens must do (one keep-alive connection per user, one timestamp per chunk, tokengate's SSE
 * parser and event interpreter) on undici's lowest-level API, `dispatch` with a handler: no Readable body stream, no
 * async iterator, no abort signals, no records, no scheduler. The gap between this and tokengate is what tokengate's
 * own code costs; what this costs is Node's event loop, undici's HTTP parser and the kernel, per chunk.
 * argv[2]: the same options as tokengate-load.ts. Runs until killed.
 */
const o = floorOptions();
const agent = new Agent({ pipelining: 1, keepAliveTimeout: 30_000 });
const origin = new URL(o.url).origin;

function one(t: FloorTask): Promise<number> {
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

runFloorUsers(o, () => one);
