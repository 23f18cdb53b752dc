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
 * The main step also records the pid of each server it starts (pipeline hook `onTargetStarted`) with the process's start
 * time, for a server started with an environment of its own. A recorded pid is only stopped if a process with that pid
 * and that start time still exists, so a pid the OS has since reused is never touched.
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

/** A process recorded by the main step: pid plus its start time (clock ticks since boot, /proc/<pid>/stat field 22). */
export interface RecordedProcess {
  pid: number;
  start: string;
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined when it does not exist. */
export async function processStartTime(pid: number, procRoot = "/proc"): Promise<string | undefined> {
  try {
    const stat = await readFile(`${procRoot}/${pid}/stat`, "utf8");
    // comm (field 2) is in parentheses and may contain spaces or ")": split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19]; // field 22 overall = index 19 after pid and comm
  } catch {
    return undefined;
  }
}

/** Parses the recorded list saved in state; anything malformed is ignored (the post step must not fail). */
export function parseRecorded(json: string): RecordedProcess[] {
  try {
    const list = JSON.parse(json) as unknown;
    if (!Array.isArray(list)) return [];
    return list.filter(
      (p): p is RecordedProcess =>
        typeof p === "object" &&
        p !== null &&
        Number.isInteger((p as RecordedProcess).pid) &&
        (p as RecordedProcess).pid > 1 &&
        typeof (p as RecordedProcess).start === "string",
    );
  } catch {
    return [];
  }
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
  recorded: RecordedProcess[] = [],
): Promise<{ stopped: OwnedProcess[]; killed: OwnedProcess[] }> {
  if (process.platform !== "linux") {
    log(`tokengate post: cannot look for leftover processes on ${process.platform} (needs /proc)`);
    return { stopped: [], killed: [] };
  }
  const owned = ownerId === "" ? [] : await findOwnedProcesses(ownerId);
  for (const r of recorded) {
    if (owned.some((o) => o.pid === r.pid) || r.pid === process.pid) continue;
    if ((await processStartTime(r.pid)) !== r.start) continue; // exited, or the pid now belongs to someone else
    const name = await readFile(`/proc/${r.pid}/comm`, "utf8").then(
      (s) => s.trim(),
      () => "?",
    );
    owned.push({ pid: r.pid, name });
  }
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
