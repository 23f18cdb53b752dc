import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import { liveChildCount } from "../../src/util/children.js";
import { BadInputError, CouldNotRunError } from "../../src/util/errors.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";
import { pidAlive } from "../helpers/processes.js";

/** A stopped child is reaped by Node before "exit" fires, so its pid is gone by the time stop() resolves. */
async function expectGone(pid: number | undefined): Promise<void> {
  expect(pid).toBeTypeOf("number");
  expect(pidAlive(pid!)).toBe(false);
}

let serverBin: string;
let model: string;
const dir = mkdtempSync(join(tmpdir(), "tokengate-llama-server-test-"));

beforeAll(async () => {
  serverBin = await findLlamaServerForTests();
  model = await tinyModel();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("llama-server target (real binary, tiny model)", () => {
  it("starts, is healthy, fingerprints, and stops leaving no process", async () => {
    const logFile = join(dir, "ok.log");
    const target = createLlamaServerTarget({
      model,
      serverBin,
      threads: 2,
      serverFlags: ["--parallel", "2", "-c", "1024"],
      logFile,
    });
    try {
      const ep = await target.start();
      expect(ep.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(ep.apis).toEqual(["completion", "openai-completions", "openai-chat"]);
      expect(ep.logFile).toBe(logFile);
      expect(ep.bannedTokenIds.length).toBeGreaterThan(0);
      expect(ep.modelName.length).toBeGreaterThan(0);
      expect(target.alive()).toBe(true);

      const health = await request(`${ep.baseUrl}/health`);
      expect(health.statusCode).toBe(200);
      expect(await health.body.json()).toEqual({ status: "ok" });
      const metrics = await request(ep.metricsUrl!);
      expect(metrics.statusCode).toBe(200);
      expect(await metrics.body.text()).toContain("llamacpp:");

      const fp = await target.fingerprint();
      expect(fp.kind).toBe("llama-server");
      expect(fp.build).toMatch(/^b\d+-[0-9a-f]+$/);
      expect(fp.model?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(fp.model?.quantization).toBeTruthy();
      expect(fp.model?.shape?.layers).toBeGreaterThan(0);
      expect(fp.serverFlags).toEqual(expect.arrayContaining(["--metrics", "-t", "2", "--parallel", "2"]));
      // Host, port and the model path vary per run and are not flags a baseline should be matched on.
      expect(fp.serverFlags).not.toContain("--port");
      expect(fp.details.threads).toBe(2);
      expect(fp.details.slots).toBe(2);
      expect(fp.details.ctxPerSlot).toBe(512);
      expect(fp.details.serverBin).toBe(serverBin);
      expect(readFileSync(logFile, "utf8")).toContain("# tokengate:");
    } finally {
      await target.stop();
    }
    expect(target.alive()).toBe(false);
    await expectGone(target.pid());
    // Idempotent, and safe through the dispose path too.
    await target.stop();
    await target[Symbol.asyncDispose]();
  });

  it("`await using` stops the server at the end of the block", async () => {
    let pid: number | undefined;
    {
      await using target = createLlamaServerTarget({ model, serverBin, threads: 1, logFile: join(dir, "using.log") });
      await target.start();
      pid = target.pid();
      expect(pidAlive(pid!)).toBe(true);
    }
    await expectGone(pid);
  });

  it("a server that exits at once fails fast with its log tail", async () => {
    const target = createLlamaServerTarget({
      model,
      serverBin,
      serverFlags: ["--cache-type-k", "not-a-cache-type"],
      logFile: join(dir, "bad-flag.log"),
      // A long deadline: the error must come from the exit, not from the deadline.
      readyTimeoutMs: 600_000,
    });
    const err = await target.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    const msg = (err as CouldNotRunError).message;
    expect(msg).toMatch(/exited with code \d+ while starting/);
    expect(msg).toContain("not-a-cache-type");
    expect(target.alive()).toBe(false);
    await target.stop();
  });

  it("/bin/false as the server binary fails fast too", async () => {
    const target = createLlamaServerTarget({
      model,
      serverBin: "/bin/false",
      logFile: join(dir, "false.log"),
      readyTimeoutMs: 600_000,
    });
    const err = await target.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    expect((err as Error).message).toMatch(/exited with code 1 while starting/);
    // The log still names the command that was run, for reproducing by hand.
    expect((err as Error).message).toContain("# tokengate: /bin/false");
  });

  it("a port that is already taken is bad input naming the port", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const before = liveChildCount();
      const target = createLlamaServerTarget({ model, serverBin, port, logFile: join(dir, "port.log") });
      const err = await target.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadInputError);
      expect((err as BadInputError).message).toContain(String(port));
      expect((err as BadInputError).hint).toMatch(/omit/);
      expect(target.pid()).toBeUndefined();
      expect(liveChildCount()).toBe(before);
    } finally {
      blocker.close();
    }
  });

  it("a requested free port is used", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await using target = createLlamaServerTarget({
      model,
      serverBin,
      port,
      threads: 1,
      logFile: join(dir, "fixed-port.log"),
    });
    const ep = await target.start();
    expect(ep.baseUrl).toBe(`http://127.0.0.1:${port}`);
  });

  it("a missing --server-bin is bad input naming the path", async () => {
    const target = createLlamaServerTarget({ model, serverBin: join(dir, "no-such-llama-server") });
    const err = await target.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as Error).message).toContain("no-such-llama-server");
  });

  it("a corrupt model is bad input before any server starts", async () => {
    const bad = join(dir, "corrupt.gguf");
    writeFileSync(bad, Buffer.alloc(4096, 7));
    const target = createLlamaServerTarget({ model: bad, serverBin, logFile: join(dir, "corrupt.log") });
    await expect(target.start()).rejects.toBeInstanceOf(BadInputError);
    expect(target.pid()).toBeUndefined();
  });
});

/**
 * faultInjectingServer: a stand-in for llama-server that listens and answers `/health` with 503 forever and ignores
 * SIGTERM. A real server cannot be made to stay unhealthy on demand; this checks the deadline and the SIGKILL path.
 */
function writeFaultInjectingServer(): string {
  const file = join(dir, "fault-injecting-server-503-forever.mjs");
  writeFileSync(
    file,
    `#!${process.execPath}
import { createServer } from "node:http";
const args = process.argv.slice(2);
if (args.includes("--help")) process.exit(0);
const port = Number(args[args.indexOf("--port") + 1]);
process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
createServer((req, res) => { res.statusCode = 503; res.end('{"error":{"message":"Loading model"}}'); })
  .listen(port, "127.0.0.1", () => console.log("fault-injecting stand-in listening on " + port));
`,
  );
  chmodSync(file, 0o755);
  return file;
}

describe("llama-server target deadline (fault-injecting stand-in)", () => {
  it("a server that never gets healthy fails after the deadline and is killed", async () => {
    const target = createLlamaServerTarget({
      model,
      serverBin: writeFaultInjectingServer(),
      logFile: join(dir, "never-healthy.log"),
      // Long enough for the stand-in (a node process) to start listening on a loaded 2-core machine, so the last
      // /health answer is its 503 and not a refused connection (seen in CI with 1.5 s).
      readyTimeoutMs: 8000,
      stopGraceMs: 300,
    });
    const err = await target.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    const msg = (err as Error).message;
    expect(msg).toContain("did not become healthy within 8 s");
    expect(msg).toContain("HTTP 503");
    expect(msg).toContain("fault-injecting stand-in listening");
    // It ignored SIGTERM, so only the SIGKILL after the grace period stopped it.
    expect(existsSync(join(dir, "never-healthy.log"))).toBe(true);
    await expectGone(target.pid());
    expect(target.alive()).toBe(false);
  });

  it("stop() during start cancels it and leaves no process", async () => {
    const target = createLlamaServerTarget({
      model,
      serverBin: writeFaultInjectingServer(),
      logFile: join(dir, "cancel.log"),
      readyTimeoutMs: 600_000,
      stopGraceMs: 300,
    });
    const starting = target.start();
    while (target.pid() === undefined) await sleep(5);
    await target.stop();
    const err = await starting.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    expect((err as Error).message).toContain("stopped");
    await expectGone(target.pid());
  });

  it("an aborted start signal cancels the start", async () => {
    const target = createLlamaServerTarget({
      model,
      serverBin: writeFaultInjectingServer(),
      logFile: join(dir, "abort.log"),
      readyTimeoutMs: 600_000,
      stopGraceMs: 300,
    });
    const ac = new AbortController();
    const starting = target.start(ac.signal);
    while (target.pid() === undefined) await sleep(5);
    ac.abort(new Error("user gave up"));
    const err = await starting.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    expect((err as Error).message).toContain("cancelled");
    await expectGone(target.pid());
    await target.stop();
  });
});
