import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository root (tests run the CLI from its source, as `npx tsx src/cli.ts` would). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process, for bounds on behaviour (a wait that must not run to a 120 s deadline). */
  ms: number;
}

/** A line of a stack trace (`    at fn (file.ts:12:5)`): bad input must never print one. */
export const STACK_LINE = /^\s+at .+:\d+:\d+/m;

/**
 * Runs `tokengate ARGS` as its own process (`node --import tsx src/cli.ts`), so exit codes and stderr are the real
 * ones. Killed after `timeoutMs` (the result's code is then null).
 */
export function runTokengate(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; uid?: number; gid?: number } = {},
): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += String(d);
  });
  child.stderr.on("data", (d) => {
    stderr += String(d);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}
