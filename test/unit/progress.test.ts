import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createProgress } from "../../src/util/progress.js";

function capture() {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean };
  let text = "";
  s.on("data", (d: Buffer) => {
    text += d.toString();
  });
  return { stream: s as unknown as NodeJS.WriteStream, text: () => text };
}

describe("progress outside a terminal (CI logs)", () => {
  it("prints periodic plain lines with a percentage, then done", () => {
    const c = capture();
    const p = createProgress({ label: "latency", total: 10, unit: "req", stream: c.stream, intervalMs: 0 });
    p.update(5);
    p.done("10/10 ok");
    expect(c.text()).toBe("latency: 50% (5/10 req)\nlatency: done 10/10 ok\n");
  });

  it("prints a count without a percentage when the total is unknown (time-bound tests)", () => {
    const c = capture();
    const p = createProgress({ label: "ramp", total: 0, unit: "req", stream: c.stream, intervalMs: 0 });
    p.update(42);
    expect(c.text()).toBe("ramp: 42 req\n");
  });

  it("prints nothing when quiet", () => {
    const c = capture();
    const p = createProgress({ label: "x", total: 1, stream: c.stream, quiet: true });
    p.update(1);
    p.done();
    expect(c.text()).toBe("");
  });
});
