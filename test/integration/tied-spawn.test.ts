import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { OUTLIVE_PARENT_ENV } from "../../src/util/parent-watch.js";
import { runCommand } from "../../src/util/run-command.js";
import { resolveExecutable, setprivPath, spawnTied } from "../../src/util/tied-spawn.js";
import { pidAlive, waitGone } from "../helpers/processes.js";

// Real processes, no servers: how tokengate's children are tied to it (src/util/tied-spawn.ts) and how tokengate
// notices its own parent going (src/util/parent-watch.ts). children-signals.test.ts does the same with llama-server.

const spawned: ChildProcess[] = [];
const leftovers = new Set<number>();
afterEach(() => {
  for (const p of spawned.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  for (const pid of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  leftovers.clear();
});

describe("resolveExecutable", () => {
  const dir = mkdtempSync(join(tmpdir(), "tokengate-exe-"));
  const exe = join(dir, "tool");
  writeFileSync(exe, "#!/bin/sh\nexit 0\n");
  chmodSync(exe, 0o755);
  const plain = join(dir, "notes.txt");
  writeFileSync(plain, "not a program\n");

  it("finds a name on PATH, a path against the working folder, and nothing for what cannot run", () => {
    expect(resolveExecutable("tool", { PATH: `/nonexistent:${dir}` })).toBe(exe);
    expect(resolveExecutable("./tool", {}, dir)).toBe(exe);
    expect(resolveExecutable(exe, {})).toBe(exe);
    expect(resolveExecutable("tool", { PATH: "/nonexistent" })).toBeUndefined();
    expect(resolveExecutable("notes.txt", { PATH: dir })).toBeUndefined();
    expect(resolveExecutable(dir, {})).toBeUndefined();
    expect(resolveExecutable("tool", {})).toBeUndefined();
  });
});

describe.runIf(process.platform === "linux")("tied children", () => {
  it("setpriv is found here (Debian's util-linux) and spawnTied keeps the command's own pid", async () => {
    // This machine has util-linux: a missing setpriv here would silently drop the SIGKILL guarantee.
    expect(setprivPath()).toMatch(/\/setpriv$/);
    const child = spawnTied("sleep", ["30"], { stdio: "ignore" });
    spawned.push(child);
    await once(child, "spawn");
    // setpriv sets the parent-death signal and execs: by the time it has, the process is the command itself.
    const deadline = Date.now() + 5000;
    let comm = "";
    while (Date.now() < deadline) {
      comm = readFileSync(`/proc/${child.pid}/comm`, "utf8").trim();
      if (comm === "sleep") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(comm).toBe("sleep");
    child.kill("SIGTERM");
    await once(child, "exit");
  });

  it("a command that does not exist still fails as before: program not found", async () => {
    await expect(runCommand("tokengate-no-such-program", [])).rejects.toMatchObject({
      message: "program not found",
      subject: "tokengate-no-such-program",
    });
  });

  it("runCommand in a process group relays output, exit codes and signals as the command had them", async () => {
    const lines: string[] = [];
    const ok = await runCommand("sh", ["-c", "echo one; echo two >&2; exit 3"], {
      processGroup: true,
      onLine: (l) => lines.push(l),
    });
    expect(ok.code).toBe(3);
    expect(ok.signal).toBeNull();
    expect(lines.sort()).toEqual(["one", "two"]);
    const killed = await runCommand("sh", ["-c", "kill -TERM $$"], { processGroup: true });
    expect(killed.signal).toBe("SIGTERM");
  });
});

/**
 * A middle process (the npx shell) that starts a "tokengate" (node running watchParent), waits for its "ready" line,
 * prints its pid and exits, orphaning it.
 */
async function orphanedWatcher(env: NodeJS.ProcessEnv): Promise<{ pid: number; stderr: () => string }> {
  const watchModule = fileURLToPath(new URL("../../src/util/parent-watch.ts", import.meta.url));
  const tokengate = `
    import(${JSON.stringify(watchModule)}).then((m) => {
      m.watchParent({ intervalMs: 200 });
      console.log("ready");
      setInterval(() => {}, 1 << 30);
    });
  `;
  const middle = `
    const { spawn } = require("node:child_process");
    const c = spawn(process.execPath, ["--import", "tsx", "-e", ${JSON.stringify(tokengate)}], { stdio: ["ignore", "pipe", "inherit"] });
    c.stdout.once("data", () => { console.log(c.pid); process.exit(0); });
  `;
  const proc = spawn(process.execPath, ["-e", middle], { stdio: ["ignore", "pipe", "pipe"], env });
  spawned.push(proc);
  let err = "";
  proc.stderr?.on("data", (b: Buffer) => {
    err += b.toString();
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once("line", resolve);
    proc.once("exit", (code) => setTimeout(() => reject(new Error(`middle exited with ${code}: ${err}`)), 500));
  });
  const pid = Number(line);
  leftovers.add(pid);
  return { pid, stderr: () => err };
}

describe.runIf(process.platform === "linux")("watchParent", () => {
  it("an orphaned tokengate stops itself as on SIGTERM, and says why", async () => {
    const { pid, stderr } = await orphanedWatcher({ ...process.env, [OUTLIVE_PARENT_ENV]: "" });
    expect(await waitGone(pid, 5000)).toBe(true);
    expect(stderr()).toMatch(
      /^tokengate: the process that started it \(pid \d+\) is gone \(parent now pid \d+\); stopping the run as on SIGTERM \(set TOKENGATE_OUTLIVE_PARENT=1 to keep running detached\)$/m,
    );
  });

  it(`${OUTLIVE_PARENT_ENV}=1 keeps a deliberately detached run going`, async () => {
    const { pid } = await orphanedWatcher({ ...process.env, [OUTLIVE_PARENT_ENV]: "1" });
    // Four polls' worth: a watch would have stopped it by now.
    await new Promise((r) => setTimeout(r, 1000));
    expect(pidAlive(pid)).toBe(true);
  });
});
