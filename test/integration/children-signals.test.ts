import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";
import { pidAlive } from "../helpers/processes.js";

// Real processes end to end: a tokengate-like node process (run through tsx, as `npx tsx` would) starts a real
// llama-server, then gets a signal. The hooks in src/util/children.ts must stop the server before the process exits.

const fixture = fileURLToPath(new URL("./children-hold-target.fixture.ts", import.meta.url));

let serverBin: string;
let model: string;
const spawned: ChildProcess[] = [];

beforeAll(async () => {
  serverBin = await findLlamaServerForTests();
  model = await tinyModel();
});

afterEach(() => {
  // Only if a test failed half-way: do not leave our own fixture processes behind.
  for (const p of spawned.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

/** Starts the fixture and resolves with the llama-server pid it printed. */
async function startHolder(): Promise<{ holder: ChildProcess; serverPid: number; exit: Promise<number | null> }> {
  // `node --import tsx` runs the TypeScript in one process, so the signal reaches tokengate's code directly (the `tsx`
  // CLI would add a relaying parent process).
  const holder = spawn(process.execPath, ["--import", "tsx", fixture, serverBin, model], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  spawned.push(holder);
  let stderr = "";
  holder.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const exit = new Promise<number | null>((resolve) => holder.once("exit", (code) => resolve(code)));
  const lines = createInterface({ input: holder.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    void exit.then((code) => reject(new Error(`fixture exited with ${code} before starting: ${stderr}`)));
  });
  const { pid } = JSON.parse(first) as { pid: number };
  return { holder, serverPid: pid, exit };
}

describe("tokengate interrupted while a llama-server runs", () => {
  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)("%s stops the server and exits with %i", async (signal, code) => {
    const { holder, serverPid, exit } = await startHolder();
    expect(pidAlive(serverPid)).toBe(true);
    holder.kill(signal);
    expect(await exit).toBe(code);
    // stopAllChildren waits for the server's exit before process.exit, and the server is the fixture's child, so by
    // now it is reaped or, at worst, a zombie re-parented to init for an instant: poll briefly for it to vanish.
    for (let i = 0; i < 100 && pidAlive(serverPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(pidAlive(serverPid)).toBe(false);
  });
});
