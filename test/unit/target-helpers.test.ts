import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createExternalTarget, normalizeServerUrl, serverAddress } from "../../src/target/external.js";
import { pollUntilReady } from "../../src/target/health.js";
import { checkServerFlags, logTail } from "../../src/target/llama-server.js";
import { assertPortUsable } from "../../src/target/port.js";
import { findOnPath, helpHasFlag, resolveServerBin } from "../../src/target/server-bin.js";
import { BadInputError, CouldNotRunError } from "../../src/util/errors.js";
import { clearSecretsForTests, maskSecret, redact, registerSecret } from "../../src/util/secrets.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-target-helpers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("checkServerFlags", () => {
  it("accepts ordinary llama-server flags", () => {
    expect(() => checkServerFlags(["--parallel", "4", "-c", "2048", "--cache-type-k", "q8_0"])).not.toThrow();
  });
  it.each([["--host"], ["--port"], ["-m"], ["--model"], ["--api-key"], ["--port=8080"]])(
    "rejects %s, which tokengate owns",
    (flag) => {
      const err = (() => {
        try {
          checkServerFlags(["--parallel", "2", flag, "x"]);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(BadInputError);
      expect((err as BadInputError).message).toContain(flag.split("=")[0]);
    },
  );
  it("rejects a flag and value glued with a space (there is no shell to split them)", () => {
    expect(() => checkServerFlags(["--parallel 4"])).toThrow(/space/);
  });
});

describe("normalizeServerUrl", () => {
  it("strips trailing slashes and an OpenAI-style /v1", () => {
    expect(normalizeServerUrl("http://127.0.0.1:8080/")).toBe("http://127.0.0.1:8080");
    expect(normalizeServerUrl("http://127.0.0.1:8080/v1/")).toBe("http://127.0.0.1:8080");
    expect(normalizeServerUrl("https://example.test/llm/v1")).toBe("https://example.test/llm");
  });
  it.each([
    ["127.0.0.1:8080", /not a URL|http/],
    ["ftp://127.0.0.1/", /http/],
    ["http://user:pw@127.0.0.1:8080", /user name or password/],
    ["http://127.0.0.1:8080/?x=1", /query/],
  ])("rejects %s with an example", (url, why) => {
    try {
      normalizeServerUrl(url);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BadInputError);
      expect((e as BadInputError).message).toMatch(why);
      expect((e as BadInputError).hint).toContain("--url http://127.0.0.1:8080");
      // The password must not be echoed back.
      expect((e as BadInputError).userMessage()).not.toContain("pw@");
    }
  });
});

describe("serverAddress", () => {
  it("writes host:port, with the scheme's default port and IPv6 brackets", () => {
    expect(serverAddress("http://127.0.0.1:1")).toBe("127.0.0.1:1");
    expect(serverAddress("http://example.test")).toBe("example.test:80");
    expect(serverAddress("https://example.test/llm")).toBe("example.test:443");
    expect(serverAddress("http://[::1]:8080")).toBe("[::1]:8080");
  });
});

describe("external target API key from the environment", () => {
  afterEach(() => clearSecretsForTests());
  it("an explicitly named but unset variable is bad input", () => {
    expect(() => createExternalTarget({ url: "http://127.0.0.1:1", apiKeyEnv: "MY_KEY", env: {} })).toThrow(
      BadInputError,
    );
  });
  it("the default variable may be unset (no key)", () => {
    expect(() => createExternalTarget({ url: "http://127.0.0.1:1", env: {} })).not.toThrow();
  });
  it("registers the key as a secret", () => {
    createExternalTarget({ url: "http://127.0.0.1:1", apiKeyEnv: "MY_KEY", env: { MY_KEY: "s3cr3t-value" } });
    expect(redact("key=s3cr3t-value!")).toBe("key=***!");
  });
  it("rejects a variable name that is not one", () => {
    expect(() => createExternalTarget({ url: "http://127.0.0.1:1", apiKeyEnv: "MY-KEY", env: {} })).toThrow(
      /variable name/,
    );
  });
});

describe("secrets", () => {
  afterEach(() => clearSecretsForTests());
  it("masks every occurrence, longest secret first", () => {
    registerSecret("abc");
    registerSecret("abcdef");
    expect(redact("abcdef abc xabcx")).toBe("*** *** x***x");
  });
  it("ignores empty values and leaves text alone without secrets", () => {
    registerSecret("");
    registerSecret("   ");
    registerSecret(undefined);
    expect(redact("nothing   here")).toBe("nothing   here");
  });
  it("maskSecret never shows any part of the value", () => {
    expect(maskSecret("sk-12345")).toBe("***");
    expect(maskSecret(undefined)).toBe("(none)");
  });
});

describe("helpHasFlag", () => {
  const help =
    "-np,   --parallel N   number of slots\n--webui, --no-webui  whether to enable the Web UI\n--metrics  enable";
  it("finds whole flags only", () => {
    expect(helpHasFlag(help, "--no-webui")).toBe(true);
    expect(helpHasFlag(help, "--metrics")).toBe(true);
    expect(helpHasFlag(help, "--no-web")).toBe(false);
    expect(helpHasFlag("", "--no-webui")).toBe(false);
  });
});

describe("logTail", () => {
  it("returns the last lines without trailing blanks", () => {
    const f = join(dir, "tail.log");
    writeFileSync(f, `${Array.from({ length: 50 }, (_, i) => `line ${i}`).join("\n")}\n\n`);
    expect(logTail(f, 3)).toEqual(["line 47", "line 48", "line 49"]);
  });
  it("reads only the end of a big file and drops the cut first line", () => {
    const f = join(dir, "big.log");
    writeFileSync(f, `${"x".repeat(100_000)}\nlast\n`);
    expect(logTail(f, 5)).toEqual(["last"]);
  });
  it("is empty for a missing file", () => {
    expect(logTail(join(dir, "missing.log"))).toEqual([]);
  });
});

describe("resolveServerBin", () => {
  const exe = join(dir, "bin", "llama-server");
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(exe, "#!/bin/sh\nexit 0\n");
  chmodSync(exe, 0o755);
  const plain = join(dir, "not-executable");
  writeFileSync(plain, "");
  chmodSync(plain, 0o644);

  it("takes an explicit executable", async () => {
    expect(await resolveServerBin({ serverBin: exe })).toEqual({ path: exe, source: "flag" });
  });
  it("names a missing path", async () => {
    await expect(resolveServerBin({ serverBin: join(dir, "nope") })).rejects.toThrow(/not found: .*nope/);
    await expect(resolveServerBin({ serverBin: join(dir, "nope") })).rejects.toBeInstanceOf(BadInputError);
  });
  it("rejects a file without the execute bit and a folder", async () => {
    await expect(resolveServerBin({ serverBin: plain })).rejects.toThrow(/not an executable/);
    await expect(resolveServerBin({ serverBin: dir })).rejects.toBeInstanceOf(BadInputError);
  });
  it("finds llama-server on PATH", async () => {
    expect(findOnPath("llama-server", `${dir}:${join(dir, "bin")}`)).toBe(exe);
    expect(await resolveServerBin({ pathVar: join(dir, "bin") })).toEqual({ path: exe, source: "path" });
  });
  it("says to run `tokengate server build` when there is nothing", async () => {
    const err = await resolveServerBin({ pathVar: dir, noCache: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    expect((err as CouldNotRunError).hint).toContain("tokengate server build");
    expect((err as CouldNotRunError).hint).toContain("--server-bin");
  });
});

describe("pollUntilReady", () => {
  it("polls until the probe is ready, with whole-millisecond budgets", async () => {
    const budgets: number[] = [];
    let calls = 0;
    const r = await pollUntilReady(
      async (ms) => {
        budgets.push(ms);
        calls++;
        return calls < 3 ? { ready: false, detail: `HTTP 503 #${calls}` } : { ready: true, detail: "ok" };
      },
      { timeoutMs: 10_000.5, initialDelayMs: 1 },
    );
    expect(r.ready).toBe(true);
    expect(calls).toBe(3);
    expect(budgets.every((b) => Number.isInteger(b) && b >= 1 && b <= 5000)).toBe(true);
  });

  it("gives up at the deadline with the last detail", async () => {
    const r = await pollUntilReady(async () => ({ ready: false, detail: "HTTP 503 (loading)" }), {
      timeoutMs: 60,
      initialDelayMs: 5,
    });
    expect(r).toMatchObject({ ready: false, detail: "HTTP 503 (loading)" });
  });

  it("a last probe that timed out does not hide the answer before it (CI once saw only 'no answer in time')", async () => {
    let calls = 0;
    const r = await pollUntilReady(
      async () =>
        ++calls < 3
          ? { ready: false, detail: "HTTP 503 (loading)" }
          : { ready: false, detail: "no answer in time", noAnswer: true },
      { timeoutMs: 500, initialDelayMs: 5 },
    );
    expect(r).toMatchObject({ ready: false, detail: "HTTP 503 (loading); the last probe got no answer in time" });
    // With no answer at all, the timeout is the detail.
    const none = await pollUntilReady(async () => ({ ready: false, detail: "no answer in time", noAnswer: true }), {
      timeoutMs: 30,
      initialDelayMs: 5,
    });
    expect(none.detail).toBe("no answer in time");
  });

  it("stops at once when failFast rejects", async () => {
    const boom = new CouldNotRunError("child exited");
    let fail!: (e: unknown) => void;
    const failFast = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const p = pollUntilReady(async () => ({ ready: false, detail: "refused" }), { timeoutMs: 600_000, failFast });
    setTimeout(() => fail(boom), 20);
    await expect(p).rejects.toBe(boom);
  });

  it("gives up on probes refused for refusedForMs in a row, and keeps waiting on answers (HTTP 503)", async () => {
    let calls = 0;
    const refused = await pollUntilReady(
      async () => {
        calls++;
        return { ready: false, detail: "connection refused (nothing listening yet)", refused: true };
      },
      { timeoutMs: 600_000, refusedForMs: 40, initialDelayMs: 5, maxDelayMs: 10 },
    );
    expect(refused).toMatchObject({ ready: false, refused: true, detail: expect.stringContaining("refused") });
    expect(calls).toBeGreaterThan(1);
    // An answer (HTTP 503) between refusals starts the refused run again: the server was there (it may be restarting).
    // Here every other probe is refused; each refused run is one probe long (no sleep inside it), while the whole wait
    // takes at least 29 sleeps of 5 ms, longer than refusedForMs: without the restart it would give up.
    let n = 0;
    const mixed = await pollUntilReady(
      async () => {
        n++;
        if (n >= 30) return { ready: true, detail: "ok" };
        return n % 2 === 0
          ? { ready: false, detail: "HTTP 503 (loading)" }
          : { ready: false, detail: "connection refused", refused: true };
      },
      { timeoutMs: 600_000, refusedForMs: 50, initialDelayMs: 5, maxDelayMs: 5 },
    );
    expect(mixed.elapsedMs).toBeGreaterThanOrEqual(50);
    expect(mixed.ready).toBe(true);
    // Without refusedForMs a refused probe is one more not-ready answer (llama-server's own wait keeps that).
    const plain = await pollUntilReady(async () => ({ ready: false, detail: "refused", refused: true }), {
      timeoutMs: 60,
      initialDelayMs: 5,
    });
    expect(plain).toMatchObject({ ready: false });
    expect("refused" in plain && plain.refused).toBeFalsy();
  });

  it("says how long it has waited about every waitingEveryMs, with the last detail", async () => {
    const lines: Array<[string, number]> = [];
    let calls = 0;
    const r = await pollUntilReady(
      async () => (++calls < 25 ? { ready: false, detail: "HTTP 503 (loading)" } : { ready: true, detail: "ok" }),
      {
        timeoutMs: 600_000,
        initialDelayMs: 2,
        maxDelayMs: 4,
        waitingEveryMs: 20,
        onWaiting: (detail, ms) => lines.push([detail, ms]),
      },
    );
    expect(r.ready).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every(([d]) => d === "HTTP 503 (loading)")).toBe(true);
    // One line per period at most (not one per probe: 24 probes were not ready).
    expect(lines.length).toBeLessThanOrEqual(Math.floor(r.elapsedMs / 20));
    expect(lines.length).toBeLessThan(24);
    expect(lines[0]![1]).toBeGreaterThanOrEqual(20);
  });

  it("rejects with the abort reason", async () => {
    const ac = new AbortController();
    const p = pollUntilReady(async () => ({ ready: false, detail: "refused" }), {
      timeoutMs: 600_000,
      signal: ac.signal,
    });
    const reason = new Error("cancelled by test");
    setTimeout(() => ac.abort(reason), 20);
    await expect(p).rejects.toBe(reason);
  });
});

describe("assertPortUsable", () => {
  it.each([0, -1, 70_000, 80.5])("rejects port %s before touching the network", async (port) => {
    await expect(assertPortUsable(port)).rejects.toThrow(/1 to 65535/);
  });
});
