import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setprivPath } from "../../src/util/tied-spawn.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";
import { cmdline, descendants, parentOf, pidAlive, waitGone } from "../helpers/processes.js";

// Real processes end to end: a tokengate-like node process (run through tsx, as `npx tsx` would) or the real
// `tokengate run` starts a real llama-server, then it (or the wrapper that started it) gets a signal. Afterwards no
// process it started may be left: checked by pid (kill(pid, 0) fails with ESRCH, or only a zombie is left).

const fixture = fileURLToPath(new URL("./children-hold-target.fixture.ts", import.meta.url));
const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
const suite = fileURLToPath(new URL("../../examples/suites/quick.yml", import.meta.url));

let serverBin: string;
let model: string;
const spawned: ChildProcess[] = [];
/** Pids a failed test may have left: killed in afterEach, so one failure does not leave servers running. */
const leftovers = new Set<number>();

beforeAll(async () => {
  serverBin = await findLlamaServerForTests();
  model = await tinyModel();
});

afterEach(() => {
  // Only if a test failed half-way: do not leave our own processes behind.
  for (const p of spawned.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  for (const pid of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone, as it should be
    }
  }
  leftovers.clear();
});

/** Starts a process and resolves with its exit (code, or 128 + signal number as a shell reports it). */
function start(
  cmd: string,
  args: string[],
): { proc: ChildProcess; exit: Promise<number | null>; stderr: () => string } {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  spawned.push(proc);
  let err = "";
  proc.stderr?.on("data", (b: Buffer) => {
    err += b.toString();
  });
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, exit, stderr: () => err };
}

/** Starts the fixture in `mode` and resolves with the pid it printed (the child it started). */
async function startHolder(
  mode: string[],
): Promise<{ holder: ChildProcess; pid: number; exit: Promise<number | null> }> {
  // `node --import tsx` runs the TypeScript in one process, so the signal reaches tokengate's code directly (the `tsx`
  // CLI would add a relaying parent process).
  const { proc, exit, stderr } = start(process.execPath, ["--import", "tsx", fixture, ...mode]);
  const lines = createInterface({ input: proc.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    void exit.then((code) => reject(new Error(`fixture exited with ${code} before starting: ${stderr()}`)));
  });
  const { pid } = JSON.parse(first) as { pid: number };
  leftovers.add(pid);
  return { holder: proc, pid, exit };
}

/**
 * Polls the processes below `root` until a llama-server serving a model runs (not tokengate's `llama-server --help`
 * probe, which comes first and exits by itself); resolves with its pid.
 */
async function waitForServer(root: number, why: () => string, timeoutMs = 90_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = descendants(root).find((p) => p.comm === "llama-server" && cmdline(p.pid).includes("--port"));
    if (found) {
      leftovers.add(found.pid);
      return found.pid;
    }
    if (Date.now() > deadline || !pidAlive(root)) throw new Error(`no llama-server below pid ${root}: ${why()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `tokengate run` from the sources, on the real llama-server with the tiny model (the quick suite: minutes long). */
function runArgs(): string[] {
  const out = mkdtempSync(join(tmpdir(), "tokengate-signals-"));
  return [
    "--import",
    "tsx",
    cli,
    "run",
    "--suite",
    suite,
    "--target",
    "llama-server",
    "--model",
    model,
    "--server-bin",
    serverBin,
    "--out",
    out,
    "--quiet",
  ];
}

describe("tokengate interrupted while a llama-server runs", () => {
  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)("%s stops the server and exits with %i", async (signal, code) => {
    const { holder, pid: serverPid, exit } = await startHolder(["llama-server", serverBin, model]);
    expect(pidAlive(serverPid)).toBe(true);
    holder.kill(signal);
    expect(await exit).toBe(code);
    // stopAllChildren waits for the server's exit before process.exit, and the server is the fixture's child, so by
    // now it is reaped or, at worst, a zombie re-parented to init for an instant.
    expect(await waitGone(serverPid, 2000)).toBe(true);
  });
});

describe.runIf(process.platform === "linux")("nothing outlives tokengate, however it dies", () => {
  it.runIf(setprivPath() !== undefined)(
    "SIGKILL to tokengate: the kernel kills its llama-server (setpriv --pdeathsig)",
    async () => {
      const { holder, pid: serverPid, exit } = await startHolder(["llama-server", serverBin, model]);
      expect(pidAlive(serverPid)).toBe(true);
      // The pid is the server's own, not setpriv's: setpriv execs it.
      expect(descendants(holder.pid!).map((p) => p.comm)).toEqual(["llama-server"]);
      holder.kill("SIGKILL");
      await exit;
      // Nothing in tokengate ran: only the kernel's parent-death signal can have ended it.
      expect(await waitGone(serverPid, 5000)).toBe(true);
    },
  );

  it("SIGKILL to tokengate: the in-process target's child sees its IPC channel close and exits", async () => {
    const { holder, pid: childPid, exit } = await startHolder(["in-process", model]);
    expect(pidAlive(childPid)).toBe(true);
    holder.kill("SIGKILL");
    await exit;
    expect(await waitGone(childPid, 10_000)).toBe(true);
  });

  it("SIGKILL to tokengate during a build: the build's own children stop too (process group watchdog)", async () => {
    const { holder, pid: sleepPid, exit } = await startHolder(["build-group"]);
    expect(pidAlive(sleepPid)).toBe(true);
    holder.kill("SIGKILL");
    await exit;
    // The watchdog polls its parent every 500 ms, then SIGTERMs the group (sleep dies of it at once).
    expect(await waitGone(sleepPid, 5000)).toBe(true);
  });

  it("tokengate run, SIGTERM: its llama-server stops and it exits with 143", async () => {
    const run = start(process.execPath, runArgs());
    const serverPid = await waitForServer(run.proc.pid!, run.stderr);
    run.proc.kill("SIGTERM");
    expect(await run.exit).toBe(143);
    expect(await waitGone(serverPid, 2000)).toBe(true);
  });

  it.runIf(setprivPath() !== undefined)("tokengate run, SIGKILL: its llama-server does not survive it", async () => {
    const run = start(process.execPath, runArgs());
    const serverPid = await waitForServer(run.proc.pid!, run.stderr);
    run.proc.kill("SIGKILL");
    await run.exit;
    expect(await waitGone(serverPid, 5000)).toBe(true);
  });

  it("SIGTERM to an npx-style wrapper: tokengate sees its parent go, stops its server and exits", async () => {
    // What npx does (npm 11): node npx -> `sh -c <command>` -> node tokengate. On SIGTERM npx relays it to the shell
    // and exits; the shell dies of it without passing it on, and tokengate is orphaned (re-parented to pid 1).
    const wrapper = `
      const { spawn } = require("node:child_process");
      const child = spawn("sh", ["-c", '"$@"', "sh", ...process.argv.slice(1)], { stdio: "inherit" });
      process.on("SIGTERM", () => { child.kill("SIGTERM"); process.exit(143); });
    `;
    const npx = start(process.execPath, ["-e", wrapper, "--", process.execPath, ...runArgs()]);
    const serverPid = await waitForServer(npx.proc.pid!, npx.stderr);
    // tokengate is the server's parent (node's main thread is named "node" or, in Node 24, "MainThread").
    const tokengate = parentOf(serverPid);
    expect(descendants(npx.proc.pid!).map((p) => p.pid)).toContain(tokengate);
    leftovers.add(tokengate!);
    npx.proc.kill("SIGTERM");
    expect(await npx.exit).toBe(143);
    // tokengate polls its parent every second, then stops the server (SIGTERM, up to 3 s grace) and exits.
    expect(await waitGone(tokengate!, 10_000)).toBe(true);
    expect(await waitGone(serverPid, 2000)).toBe(true);
    expect(npx.stderr()).toMatch(/tokengate: the process that started it \(pid \d+\) is gone/);
  });
});
