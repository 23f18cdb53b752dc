import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSuite } from "../../src/config/suite-loader.js";
import { createExternalTarget, REFUSED_GRACE_MS } from "../../src/target/external.js";
import { createTarget } from "../../src/target/index.js";
import { freePort } from "../../src/target/port.js";
import { CouldNotRunError } from "../../src/util/errors.js";
import { runTokengate, STACK_LINE } from "../helpers/cli-run.js";
import { startFaultInjectingLoadingServer } from "../helpers/fault-injecting-loading-server.js";

// How the external target waits at start: nothing listening is an error within seconds (unless asked to wait for a
// server that is starting); a server that answers 503 while it loads is waited for, and says so.

const dir = mkdtempSync(join(tmpdir(), "tokengate-external-readiness-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The tokengate error line of a CLI run's stderr. */
const errorLine = (stderr: string) => stderr.split("\n").find((l) => l.startsWith("tokengate: --url")) ?? stderr;

describe("nothing listening at the URL", () => {
  it("is exit 3 within seconds (not the 120 s readiness deadline), naming the address", async () => {
    const port = await freePort();
    const r = await runTokengate([
      "run",
      "--target",
      "external",
      "--url",
      `http://127.0.0.1:${port}`,
      "--out",
      join(dir, "closed"),
    ]);
    expect(r.code, r.stderr).toBe(3);
    expect(errorLine(r.stderr)).toContain(`connection refused at 127.0.0.1:${port}`);
    expect(r.stderr).toContain("--wait-for-server");
    expect(r.stderr).not.toMatch(STACK_LINE);
    // A bound on behaviour, not a benchmark: the suite's readiness deadline is 120 s.
    expect(r.ms).toBeLessThan(20_000);
  });

  it("--wait-for-server keeps retrying that long (the flag reaches the target)", async () => {
    const port = await freePort();
    const r = await runTokengate([
      "run",
      "--target",
      "external",
      "--url",
      `http://127.0.0.1:${port}`,
      "--wait-for-server",
      "6s",
      "--out",
      join(dir, "waited"),
    ]);
    expect(r.code, r.stderr).toBe(3);
    const retried = Number(/retried for ([\d.]+) s/.exec(errorLine(r.stderr))?.[1]);
    expect(retried).toBeGreaterThanOrEqual(6);
    // While it waits it says so.
    expect(r.stderr).toMatch(new RegExp(`waiting for http://127\\.0\\.0\\.1:${port}: connection refused.*, \\d+ s`));
  });

  it("a bad --wait-for-server is exit 2 naming the flag, before anything is tried", async () => {
    const r = await runTokengate([
      "run",
      "--target",
      "external",
      "--url",
      "http://127.0.0.1:1",
      "--wait-for-server",
      "soon",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(/^tokengate: --wait-for-server: must be a duration/);
    expect(r.stderr).not.toContain("starting the external target");
  });

  it("a server that comes up within the suite's target.waitForServerMs is used", async () => {
    const port = await freePort();
    const suiteFile = join(dir, "wait.yml");
    writeFileSync(
      suiteFile,
      `target:\n  kind: external\n  url: http://127.0.0.1:${port}\n  waitForServerMs: 60000\ntests:\n  - kind: latency\n`,
    );
    const { suite } = loadSuite(suiteFile);
    const target = createTarget({ kind: "external", embeddedDefault: false }, suite, { outDir: dir, quiet: true });
    // Later than the default grace: without waitForServerMs this start would have failed already.
    let server: Awaited<ReturnType<typeof startFaultInjectingLoadingServer>> | undefined;
    const late = setTimeout(async () => {
      server = await startFaultInjectingLoadingServer({ port });
    }, REFUSED_GRACE_MS + 1500);
    try {
      const ep = await target.start();
      expect(ep.baseUrl).toBe(`http://127.0.0.1:${port}`);
      expect(ep.modelName).toBe("loading-server-model");
      expect(server?.answered[200]).toBeGreaterThan(0);
    } finally {
      clearTimeout(late);
      await target.stop();
      await server?.close();
    }
  });
});

describe("a server that answers 503 while it loads", () => {
  it("is waited for past the refused-connection grace, with a line every few seconds, and then used", async () => {
    const server = await startFaultInjectingLoadingServer({ loadingMs: REFUSED_GRACE_MS + 4000 });
    const lines: string[] = [];
    try {
      await using t = createExternalTarget({
        url: server.url,
        env: {},
        readyTimeoutMs: 120_000,
        onWaiting: (line) => lines.push(line),
      });
      const ep = await t.start();
      expect(ep.modelName).toBe("loading-server-model");
      expect(server.answered[503]).toBeGreaterThan(1);
      expect(server.answered[200]).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
    expect(lines.length).toBeGreaterThan(0);
    const escaped = server.url.replace(/[.]/g, "\\.");
    for (const line of lines)
      expect(line).toMatch(new RegExp(`^waiting for ${escaped}: HTTP 503 \\(loading\\), \\d+ s$`));
  });

  it("until the readiness deadline, then could-not-run with the last answer", async () => {
    const server = await startFaultInjectingLoadingServer({ loadingMs: 600_000 });
    try {
      const t = createExternalTarget({
        url: server.url,
        env: {},
        readyTimeoutMs: REFUSED_GRACE_MS + 1500,
        onWaiting: () => {},
      });
      const err = await t.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CouldNotRunError);
      // On a loaded machine the last probe (given only the time left) can time out: the 503 before it is still named.
      expect((err as Error).message).toMatch(
        /no answer from .* within \d+ s \(last: HTTP 503 \(loading\)(; the last probe got no answer in time)?\)/,
      );
    } finally {
      await server.close();
    }
  });
});
