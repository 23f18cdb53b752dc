import type { ChildProcess } from "node:child_process";

/**
 * Every child process tokengate spawns is registered here, so that an interrupted tokengate (SIGINT, SIGTERM, an
 * uncaught error) never leaves a llama-server or a build behind. Children are stopped with SIGTERM, then SIGKILL.
 *
 * Invariant: a registered child is removed when it exits; `stopAllChildren()` is safe to call any number of times.
 */
const live = new Set<ChildProcess>();
let hooksInstalled = false;

export function registerChild(child: ChildProcess): void {
  installHooks();
  live.add(child);
  // A spawn that fails outright (ENOENT) emits "error" and "close" but never "exit": listen to all three.
  const forget = () => live.delete(child);
  child.once("exit", forget);
  child.once("close", forget);
  child.once("error", forget);
}

export function liveChildCount(): number {
  return live.size;
}

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL. Resolves when the child has exited. Idempotent. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceMs);
  });
  const first = await Promise.race([exited.then(() => "exited" as const), timedOut]);
  clearTimeout(timer);
  if (first === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}

export async function stopAllChildren(graceMs = 5000): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c, graceMs)));
}

function killAllNow(): void {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // On a signal: stop children gracefully, then exit with the conventional 128+signal code.
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      void stopAllChildren(3000).finally(() => process.exit(code));
    });
  }
  // Last resort: the process is exiting synchronously; only a synchronous kill is possible here.
  process.once("exit", killAllNow);
}
