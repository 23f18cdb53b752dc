import { connect, type Socket } from "node:net";
import { interpretEvent } from "../../src/client/events.js";
import { SseParser } from "../../src/client/sse.js";
import { bodyOf, type FloorTask, floorOptions, runFloorUsers } from "./floor-common.js";

/**
 * Not a load tool: the floor under a Node.js streaming client that has no HTTP library at all, for the client-overhead
 * benchmark. `net.Socket` with `onread` (one reused buffer, no Readable stream, no per-chunk Buffer), one keep-alive
 * connection per user, a minimal HTTP/1.1 chunked-body parser that handles only what the bench's SSE server sends, one
 * timestamp per chunk, tokengate's SSE parser and event interpreter. It answers "would a hand-written HTTP client make
 * tokengate cheaper than undici?": what this costs is Node's event loop and the kernel per chunk, nothing else.
 * argv[2]: the same options as tokengate-load.ts. Runs until killed.
 */
const o = floorOptions();
const url = new URL(o.url);

class Conn {
  private socket: Socket;
  private onBytes: ((b: Buffer, n: number) => void) | null = null;
  constructor() {
    this.socket = connect({
      host: url.hostname,
      port: Number(url.port),
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(65536),
        callback: (n: number, buf: Uint8Array) => {
          this.onBytes?.(buf as Buffer, n);
          return true;
        },
      },
    });
  }
  request(t: FloorTask): Promise<number> {
    const { path, body } = bodyOf(t);
    const head = `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
    return new Promise((resolve) => {
      const parser = new SseParser();
      const decoder = new TextDecoder();
      let tokens = 0;
      let firstNs = 0;
      let headDone = false;
      let headBuf = "";
      let chunkLeft = -1; // -1: expecting a size line
      let sizeLine = "";
      let crlf = 0; // bytes of CRLF still to skip after a chunk's data
      let last = false; // the zero-size chunk was read: the response ends after its CRLF
      const onPayload = (b: Buffer, atNs: number) => {
        for (const ev of parser.push(decoder.decode(b, { stream: true }))) {
          if (interpretEvent(t.api, ev.data).content) {
            tokens++;
            if (!firstNs) firstNs = atNs;
          }
        }
      };
      this.onBytes = (buf, n) => {
        const atNs = Number(process.hrtime.bigint());
        let i = 0;
        if (!headDone) {
          headBuf += buf.toString("latin1", 0, n);
          const end = headBuf.indexOf("\r\n\r\n");
          if (end < 0) return;
          headDone = true;
          i = n - (headBuf.length - end - 4);
        }
        while (i < n) {
          if (crlf > 0) {
            const k = Math.min(crlf, n - i);
            crlf -= k;
            i += k;
            if (crlf === 0 && last) {
              this.onBytes = null;
              resolve(tokens);
              return;
            }
            continue;
          }
          if (chunkLeft < 0) {
            const nl = buf.indexOf(10, i);
            if (nl < 0 || nl >= n) {
              sizeLine += buf.toString("latin1", i, n);
              return;
            }
            sizeLine += buf.toString("latin1", i, nl);
            i = nl + 1;
            const size = Number.parseInt(sizeLine, 16);
            sizeLine = "";
            if (size === 0) {
              last = true; // no trailers from the bench server: the final CRLF follows
              crlf = 2;
              continue;
            }
            chunkLeft = size;
            continue;
          }
          const k = Math.min(chunkLeft, n - i);
          onPayload(buf.subarray(i, i + k), atNs);
          chunkLeft -= k;
          i += k;
          if (chunkLeft === 0) {
            chunkLeft = -1;
            crlf = 2;
          }
        }
      };
      this.socket.write(head + body);
    });
  }
}

runFloorUsers(o, () => {
  const c = new Conn();
  return (t) => c.request(t);
});
