import { readdirSync, readFileSync } from "node:fs";

/**
 * True while a process with this id exists and has not exited (signal 0 checks without sending anything). A zombie
 * (state Z: exited, its status not yet collected by its parent, e.g. an orphan waiting for init to reap it) is gone:
 * it runs nothing and holds no port, memory or CPU.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  return processState(pid) !== "Z";
}

/** The state letter of /proc/<pid>/stat (R, S, D, Z, ...); undefined when the process is gone or without /proc. */
export function processState(pid: number): string | undefined {
  const stat = readStat(pid);
  return stat?.state;
}

interface Stat {
  comm: string;
  state: string;
  ppid: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: fields after the last ')' are plain.
  const close = text.lastIndexOf(")");
  const [state, ppid] = text.slice(close + 2).split(" ");
  return { comm: text.slice(text.indexOf("(") + 1, close), state: state ?? "", ppid: Number(ppid) };
}

/** Every live process below `root` (children, grandchildren, ...), from /proc; with its command name. */
export function descendants(root: number): { pid: number; comm: string }[] {
  const byParent = new Map<number, { pid: number; comm: string }[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (!s || s.state === "Z") continue;
    const list = byParent.get(s.ppid) ?? [];
    list.push({ pid: Number(name), comm: s.comm });
    byParent.set(s.ppid, list);
  }
  const out: { pid: number; comm: string }[] = [];
  const todo = [root];
  while (todo.length > 0) {
    for (const c of byParent.get(todo.pop()!) ?? []) {
      out.push(c);
      todo.push(c.pid);
    }
  }
  return out;
}

/** Resolves true once `pid` is gone, false if it is still there after `timeoutMs`. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** The parent pid of a live process, from /proc; undefined when it is gone. */
export function parentOf(pid: number): number | undefined {
  return readStat(pid)?.ppid;
}

/** The command line of a live process as its arguments; empty when it is gone. */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}
