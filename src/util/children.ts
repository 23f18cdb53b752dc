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

export type InterruptSignal = "SIGINT" | "SIGTERM";
const EXIT_CODE: Record<InterruptSignal, number> = { SIGINT: 130, SIGTERM: 143 };
/** How long a run gets to write what it measured after a signal before its children are stopped and it exits. */
const WIND_DOWN_MS = 20_000;
let interruptHandler: ((signal: InterruptSignal) => void) | undefined;
let interruptedBy: InterruptSignal | undefined;

/**
 * A run that wants to end cleanly on SIGINT/SIGTERM (stop measuring, write results.json with status "interrupted"
 * and report.md, exit 130/143) registers here. The first signal calls the handler, and a fallback stops every child
 * and exits after WIND_DOWN_MS if the run does not finish; a second signal exits at once. Returns the unregister.
 */
export function onInterrupt(handler: (signal: InterruptSignal) => void): () => void {
  installHooks();
  interruptHandler = handler;
  return () => {
    if (interruptHandler === handler) interruptHandler = undefined;
  };
}

/** The signal that interrupted this process, if one did: the CLI exits with its 128+n code. */
export function interruptSignal(): InterruptSignal | undefined {
  return interruptedBy;
}

export function interruptExitCode(signal: InterruptSignal): number {
  return EXIT_CODE[signal];
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // On a signal: let a registered run wind down, else stop children gracefully, then exit with 128+signal.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      const code = EXIT_CODE[signal];
      const first = interruptedBy === undefined;
      interruptedBy ??= signal;
      if (first && interruptHandler) {
        interruptHandler(signal);
        setTimeout(() => void stopAllChildren(3000).finally(() => process.exit(code)), WIND_DOWN_MS).unref();
        return;
      }
      void stopAllChildren(3000).finally(() => process.exit(code));
    });
  }
  // Last resort: the process is exiting synchronously; only a synchronous kill is possible here.
  process.once("exit", killAllNow);
}
