/**
 * The post step: stop anything the main step started that is still running (a llama-server, the in-process model
 * child, a build) when the main step was cancelled, timed out or crashed before it could stop them itself.
 *
 * How processes are recognised: the main step puts a random id into its own environment (OWNER_ENV) before starting
 * anything, and saves the id with `core.saveState`. Every child inherits it (the targets pass process.env through), and
 * so do grandchildren (cmake -> compilers). The post step looks for processes whose environment carries exactly
 * `OWNER_ENV=<id>`. This survives the main step being SIGKILLed, unlike a list of pids kept in memory, and never matches
 * an unrelated process, unlike a saved pid that the OS may have reused.
 *
 * Linux only (/proc); elsewhere the post step says it cannot check.
 */
import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { OWNER_ENV } from "../config/action-inputs.js";

export interface OwnedProcess {
  pid: number;
  name: string;
}

/** Processes (other than this one) whose environment contains `OWNER_ENV=<ownerId>`. */
export async function findOwnedProcesses(ownerId: string, procRoot = "/proc"): Promise<OwnedProcess[]> {
  const needle = `${OWNER_ENV}=${ownerId}`;
  const found: OwnedProcess[] = [];
  for (const entry of await readdir(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = await readFile(`${procRoot}/${entry}/environ`, "latin1");
    } catch {
      continue; // gone, or another user's process (EACCES): not ours
    }
    if (!environ.split("\0").includes(needle)) continue;
    const name = await readFile(`${procRoot}/${entry}/comm`, "utf8").then(
      (s) => s.trim(),
      () => "?",
    );
    found.push({ pid, name });
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Stops the owned processes: SIGTERM, up to `graceMs` to exit, then SIGKILL. Returns what was found and what needed
 * SIGKILL. Safe to call when there is nothing to stop.
 */
export async function stopOwnedProcesses(
  ownerId: string,
  log: (line: string) => void,
  graceMs = 5000,
): Promise<{ stopped: OwnedProcess[]; killed: OwnedProcess[] }> {
  if (process.platform !== "linux") {
    log(`tokengate post: cannot look for leftover processes on ${process.platform} (needs /proc)`);
    return { stopped: [], killed: [] };
  }
  const owned = await findOwnedProcesses(ownerId);
  if (owned.length === 0) {
    log("tokengate post: nothing left running");
    return { stopped: [], killed: [] };
  }
  for (const p of owned) {
    log(`tokengate post: stopping ${p.name} (pid ${p.pid}), still running after the main step`);
    try {
      process.kill(p.pid, "SIGTERM");
    } catch {
      // exited in the meantime
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && owned.some((p) => alive(p.pid))) await sleep(100);
  const killed = owned.filter((p) => alive(p.pid));
  for (const p of killed) {
    log(`tokengate post: ${p.name} (pid ${p.pid}) ignored SIGTERM for ${graceMs} ms; sending SIGKILL`);
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // exited just now
    }
  }
  return { stopped: owned, killed };
}
