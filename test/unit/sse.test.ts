import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SseParser } from "../../src/client/sse.js";

function parseAll(chunks: string[]) {
  const p = new SseParser();
  const events = chunks.flatMap((c) => p.push(c));
  return [...events, ...p.end()].map((e) => e.data);
}

describe("SseParser", () => {
  it("parses several events in one chunk", () => {
    expect(parseAll(['data: {"a":1}\n\ndata: {"a":2}\n\n'])).toEqual(['{"a":1}', '{"a":2}']);
  });

  it("joins an event split across chunks at every byte position", () => {
    const wire = 'data: {"content":"hello"}\n\ndata: [DONE]\n\n';
    for (let cut = 1; cut < wire.length; cut++) {
      expect(parseAll([wire.slice(0, cut), wire.slice(cut)])).toEqual(['{"content":"hello"}', "[DONE]"]);
    }
  });

  it("handles CRLF and CR line endings, including a CRLF split between chunks", () => {
    expect(parseAll(["data: a\r\n\r\ndata: b\r\r"])).toEqual(["a", "b"]);
    expect(parseAll(["data: a\r", "\n\r", "\ndata: b\r\n\r\n"])).toEqual(["a", "b"]);
  });

  it("skips comments and keep-alive pings", () => {
    expect(parseAll([": ping\n\ndata: x\n\n:another\n"])).toEqual(["x"]);
  });

  it("joins multi-line data with newlines and keeps event names", () => {
    const p = new SseParser();
    const ev = p.push("event: error\ndata: line1\ndata: line2\n\n");
    expect(ev).toEqual([{ event: "error", data: "line1\nline2" }]);
  });

  it("flushes a final event with no trailing blank line (no [DONE], like llama-server /completion)", () => {
    expect(parseAll(['data: {"stop":true}'])).toEqual(['{"stop":true}']);
    expect(parseAll(['data: {"stop":true}\n'])).toEqual(['{"stop":true}']);
  });

  it("parses a real llama-server /completion stream capture", () => {
    const raw = readFileSync(new URL("../fixtures/llama-server/completion_stream.sse", import.meta.url), "utf8");
    // A capture from shared/reference/llama-server (b1-80fb11a, tiny synthetic model). The capture prefixes each line with "[ ms]" and starts with headers: strip to the wire format.
    const wire = raw
      .split("\n")
      .filter((l) => l.includes("data: "))
      .map((l) => `${l.slice(l.indexOf("data: "))}\n\n`)
      .join("");
    const events = parseAll([wire]);
    expect(events.length).toBeGreaterThan(5);
    const last = JSON.parse(events.at(-1)!);
    expect(last.stop).toBe(true);
    // One event per token, then a final stop event that carries no token but the timings.
    expect(last.timings.predicted_n).toBe(events.length - 1);
  });
});
