import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { isIP } from "node:net";
import { endianness } from "node:os";
import { join } from "node:path";

/**
 * Which process on this machine listens on a TCP port, from Linux's own tables (no lsof/ss needed):
 * 1. `/proc/net/tcp` and `/proc/net/tcp6` list every socket of this network namespace: local address and port, state
 *    (`0A` = LISTEN) and the socket's inode;
 * 2. each process's open files are links in `/proc/<pid>/fd/`; a socket reads as `socket:[<inode>]`.
 * The busy-machine guard needs it for an external server on loopback (measure/machine-load.ts): found, its CPU time
 * is the test's own work; not found, it hides in "other work" and the guard must say it cannot tell.
 *
 * Limits: another user's `/proc/<pid>/fd` is unreadable without root (the answer is then "unknown", saying so); a
 * server in a container behind a port forwarder (docker-proxy) shows as the forwarder (treated as unknown, below); a
 * server in another network namespace has no socket in our tables at all (unknown).
 */

export interface ListeningSocket {
  /** The local address as text: `127.0.0.1`, `0.0.0.0`, `::1`, `::`, `::ffff:127.0.0.1`. */
  address: string;
  port: number;
  inode: number;
}

/** TCP state LISTEN in /proc/net/tcp (include/net/tcp_states.h: TCP_LISTEN = 10). */
const LISTEN = "0A";

/**
 * The LISTEN sockets in the text of /proc/net/tcp or /proc/net/tcp6. Each line after the header is
 * `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`; addresses are hex words in the
 * kernel's byte order (`0100007F:1F90` is 127.0.0.1:8080 on a little-endian machine). Lines that do not parse are
 * skipped.
 */
export function parseListeningSockets(text: string, littleEndian = endianness() === "LE"): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!) || f[3] !== LISTEN) continue;
    const [hexAddr, hexPort] = f[1]!.split(":");
    const address = hexAddr ? decodeAddress(hexAddr, littleEndian) : undefined;
    const port = Number.parseInt(hexPort ?? "", 16);
    const inode = Number(f[9]);
    if (address === undefined || !Number.isInteger(port) || !Number.isInteger(inode) || inode <= 0) continue;
    out.push({ address, port, inode });
  }
  return out;
}

/** 8 hex digits: IPv4; 32: IPv6 as four 32-bit words. Each word is in the kernel's byte order. */
function decodeAddress(hex: string, littleEndian: boolean): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(w + i, w + i + 2), 16));
    bytes.push(...(littleEndian ? word.reverse() : word));
  }
  if (bytes.length === 4) return bytes.join(".");
  // IPv4-mapped (::ffff:a.b.c.d) reads better, and compares, as such.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join(".")}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return compressIPv6(groups);
}

/** `0:0:0:0:0:0:0:1` -> `::1` (the longest run of zero groups becomes `::`). */
function compressIPv6(groups: string[]): string {
  let best = { at: -1, len: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  if (best.len < 2) return groups.join(":");
  return `${groups.slice(0, best.at).join(":")}::${groups.slice(best.at + best.len).join(":")}`;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string): boolean {
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith("127.");
  return address === "::1";
}

function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::" || address === "::ffff:0.0.0.0";
}

/** Port forwarders: the process that listens is not the one that serves. */
const FORWARDERS = new Set(["docker-proxy", "rootlesskit", "slirp4netns", "pasta", "socat", "ssh", "sshd", "kubectl"]);

export type ListenerLookup =
  | { found: true; pids: number[]; sockets: ListeningSocket[] }
  | { found: false; why: string };

export interface FindListenerOptions {
  /** Addresses the client connects to (`127.0.0.1`, `::1`): a socket bound to another address does not serve them. */
  addresses: readonly string[];
  /** Default `/proc` (tests pass a folder of their own). */
  procRoot?: string;
}

/** The processes holding the LISTEN socket that serves `port` on one of `addresses`. */
export function findListeningProcesses(port: number, opts: FindListenerOptions): ListenerLookup {
  const proc = opts.procRoot ?? "/proc";
  const sockets: ListeningSocket[] = [];
  let tables = 0;
  for (const table of ["net/tcp", "net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(join(proc, table), "utf8");
    } catch {
      continue;
    }
    tables++;
    const serves = (s: ListeningSocket) =>
      s.port === port &&
      (isWildcard(s.address) || opts.addresses.some((a) => s.address === a || s.address === `::ffff:${a}`));
    sockets.push(...parseListeningSockets(text).filter(serves));
  }
  if (tables === 0) return { found: false, why: `${proc}/net/tcp is not readable (not Linux?)` };
  if (sockets.length === 0) {
    return {
      found: false,
      why: `no socket in this network namespace listens on port ${port} (a server in a container or another namespace?)`,
    };
  }
  const wanted = new Set(sockets.map((s) => `socket:[${s.inode}]`));
  const pids: number[] = [];
  let unreadable = 0;
  for (const name of readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(join(proc, name, "fd"));
    } catch (e) {
      // EACCES: another user's process; ENOENT: it exited meanwhile.
      if ((e as NodeJS.ErrnoException).code === "EACCES") unreadable++;
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(join(proc, name, "fd", fd));
      } catch {
        continue;
      }
      if (wanted.has(link)) {
        pids.push(Number(name));
        break;
      }
    }
  }
  if (pids.length === 0) {
    return {
      found: false,
      why:
        unreadable > 0
          ? `the process listening on port ${port} is not visible: ${unreadable} processes of other users cannot be read without their permissions`
          : `no process holds the socket listening on port ${port}`,
    };
  }
  const forwarder = pids.map((pid) => ({ pid, comm: commOf(proc, pid) })).find((p) => FORWARDERS.has(p.comm));
  if (forwarder) {
    return {
      found: false,
      why: `port ${port} is held by ${forwarder.comm} (pid ${forwarder.pid}), a port forwarder: the server behind it is not visible`,
    };
  }
  return { found: true, pids: pids.sort((a, b) => a - b), sockets };
}

function commOf(proc: string, pid: number): string {
  try {
    return readFileSync(join(proc, String(pid), "comm"), "utf8").trim();
  } catch {
    return "";
  }
}

/**
 * `pids` and every process below them (children, grandchildren), from `/proc/<pid>/task/<tid>/children`: Ollama's
 * `ollama serve` listens while its `ollama runner` children compute; vLLM's API server starts its engine process.
 */
export function withDescendants(pids: readonly number[], procRoot = "/proc"): number[] {
  const seen = new Set<number>();
  const todo = [...pids];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let tasks: string[];
    try {
      tasks = readdirSync(join(procRoot, String(pid), "task"));
    } catch {
      continue;
    }
    for (const tid of tasks) {
      let text: string;
      try {
        text = readFileSync(join(procRoot, String(pid), "task", tid, "children"), "utf8");
      } catch {
        continue;
      }
      for (const c of text.trim().split(/\s+/)) if (/^\d+$/.test(c)) todo.push(Number(c));
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/** How often a found server's descendants are re-read, and how often a server not found is looked for again (ms). */
const REFRESH_MS = 5000;

/**
 * The serving processes of a local server by its port, cached: the machine sampler asks every second, and a scan of
 * /proc/<pid>/fd is thousands of reads. Looks again when a found listener has exited (a restarted server has a new
 * pid) and at most every 5 s while none is found.
 */
export class ServingProcessFinder {
  private last: { at: number; result: number[] | { unknown: string }; listeners: number[] } | undefined;

  constructor(
    private readonly port: number,
    private readonly addresses: readonly string[],
    private readonly procRoot = "/proc",
    private readonly now: () => number = () => performance.now(),
  ) {}

  pids(): number[] | { unknown: string } {
    const t = this.now();
    const last = this.last;
    if (last && t - last.at < REFRESH_MS && last.listeners.every((pid) => alive(this.procRoot, pid))) {
      return last.result;
    }
    const found = findListeningProcesses(this.port, { addresses: this.addresses, procRoot: this.procRoot });
    this.last = found.found
      ? { at: t, result: withDescendants(found.pids, this.procRoot), listeners: found.pids }
      : { at: t, result: { unknown: found.why }, listeners: [] };
    return this.last.result;
  }
}

function alive(procRoot: string, pid: number): boolean {
  try {
    readFileSync(join(procRoot, String(pid), "stat"));
    return true;
  } catch {
    return false;
  }
}
