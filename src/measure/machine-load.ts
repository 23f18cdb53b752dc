import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import type { Target } from "../target/types.js";

/**
 * What else the machine did while a test ran. A shared CI runner (or this project's 2-core dev VM) has neighbours:
 * while they run, every latency grows and a run looks like a regression that no statistic of two runs can tell from a
 * real one (docs/verdicts.md "Busy machines"). So each test records how much of the machine's CPU time went to
 * tokengate and the server it started, and how much to everything else, from Linux's own counters:
 * - `/proc/stat`: CPU time of all CPUs by state since boot (user, nice, system, idle, iowait, irq, softirq, steal);
 * - `/proc/<pid>/stat`: utime and stime of tokengate's process and of the server's (llama-server, or the in-process
 *   target's child), both in the same clock ticks as /proc/stat.
 * "Other" = busy CPU time of the machine (user, nice, system) minus tokengate's and the server's, plus steal (time the
 * hypervisor gave to other guests), as a share of all CPUs' time. Interrupt and softirq time is left out of "busy":
 * the kernel does not charge it to any process, and most of it is our own loopback traffic (a streamed token is a
 * packet), which would otherwise read as someone else's work (13% of a 2-CPU machine in a throughput test here).
 * No tick-rate assumption is needed: every figure is a ratio of ticks.
 * The server is the target's own process (llama-server, the in-process child) or, for an external server on this
 * machine, the process found listening on its port (target/listening-process.ts). When that one cannot be found, its
 * CPU time is inside "other work" and `serverUnknown` says so: the guard then cannot tell a busy machine from a busy
 * server (policy.ts busyShare).
 * On systems without /proc nothing is recorded.
 */
export interface MachineLoad {
  /** CPUs the kernel reports (the `cpuN` lines of /proc/stat). */
  cpus: number;
  wallS: number;
  /** Share of the machine's CPU time (all CPUs together, 1 = every CPU busy) used by tokengate and its server. */
  ownShare: number;
  /** Share used by anything else: other processes and steal. */
  otherShare: number;
  /** Of otherShare, the time the hypervisor gave to other guests. */
  stealShare: number;
  /** Largest otherShare over one-second windows. */
  otherShareMax: number;
  /** 1-minute load average at the start and at the end of the test. */
  loadavg1: [number, number];
  /**
   * Set when the server under test runs on this machine but its process was not found (why, e.g. another user's
   * process): its CPU time is counted in otherShare, so otherShare cannot say how busy the machine was.
   */
  serverUnknown?: string;
}

/** What the sampler counts as ours at one sample: a pid, nothing (not running), or a server it cannot find (why). */
export type OwnProcess = number | undefined | { unknown: string };

/** tokengate itself and the processes serving `target` (Target.servingPids, else its pid): the sampler's `pids`. */
export function ownProcesses(target: Pick<Target, "pid" | "servingPids">): () => OwnProcess[] {
  return () => {
    const serving = target.servingPids?.();
    if (serving === undefined) return [process.pid, target.pid?.()];
    return "unknown" in serving ? [process.pid, serving] : [process.pid, ...serving];
  };
}

interface Snapshot {
  /** All CPU time (ticks), busy time (user, nice, system, steal), steal. */
  total: number;
  busy: number;
  steal: number;
  /** utime + stime of the processes that count as ours. */
  own: number;
  cpus: number;
  atMs: number;
}

function readProcStat(): Pick<Snapshot, "total" | "busy" | "steal" | "cpus"> | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/stat", "utf8");
  } catch {
    return undefined;
  }
  const lines = text.split("\n");
  const first = lines[0]?.trim().split(/\s+/);
  if (first?.[0] !== "cpu") return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already inside user and nice.
  const [user, nice, system, idle, iowait, irq, softirq, steal] = first.slice(1, 9).map((v) => Number(v) || 0);
  const busy = user! + nice! + system! + steal!;
  return {
    total: busy + idle! + iowait! + irq! + softirq!,
    busy,
    steal: steal!,
    cpus: lines.filter((l) => /^cpu\d+\s/.test(l)).length,
  };
}

/** utime + stime of one process in clock ticks; 0 when it is gone or unreadable. */
export function processTicks(pid: number): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) || 0) + (Number(fields[12]) || 0);
}

export interface MachineSampler {
  /** Stops sampling and returns the load over the window; undefined without /proc. Idempotent. */
  stop(): MachineLoad | undefined;
}

/** How often the one-second windows are sampled (ms). */
const WINDOW_MS = 1000;

/**
 * Starts measuring. `pids` is called at every sample, so a server restarted mid-test (a new pid) is followed; a
 * process's ticks count from the first sample that saw it. An `{ unknown }` entry at any sample marks the load
 * `serverUnknown` (the first reason given).
 */
export function startMachineSampler(pids: () => ReadonlyArray<OwnProcess>): MachineSampler {
  const owned = new Map<number, number>(); // pid -> ticks at first sight
  let unknown: string | undefined;
  const ownTicks = (): number => {
    let sum = 0;
    for (const pid of pids()) {
      if (pid === undefined) continue;
      if (typeof pid !== "number") {
        unknown ??= pid.unknown;
        continue;
      }
      const t = processTicks(pid);
      if (!owned.has(pid)) owned.set(pid, t);
      sum += t - owned.get(pid)!;
    }
    return sum;
  };
  const snap = (): Snapshot | undefined => {
    const s = readProcStat();
    return s ? { ...s, own: ownTicks(), atMs: performance.now() } : undefined;
  };
  const first = snap();
  if (!first) return { stop: () => undefined };
  const load0 = loadavg()[0]!;
  let last = first;
  let otherMax = 0;
  const tick = () => {
    const now = snap();
    if (!now) return;
    const share = otherShareBetween(last, now);
    if (share !== undefined) otherMax = Math.max(otherMax, share);
    last = now;
  };
  const timer = setInterval(tick, WINDOW_MS);
  timer.unref();
  let result: MachineLoad | undefined;
  let stopped = false;
  return {
    stop() {
      if (stopped) return result;
      stopped = true;
      clearInterval(timer);
      const end = snap();
      if (!end) return undefined;
      const window = otherShareBetween(last, end);
      if (window !== undefined) otherMax = Math.max(otherMax, window);
      const total = end.total - first.total;
      const own = clamp01((end.own - first.own) / total);
      const other = otherShareBetween(first, end) ?? 0;
      result = {
        cpus: end.cpus,
        wallS: (end.atMs - first.atMs) / 1000,
        ownShare: total > 0 ? own : 0,
        otherShare: other,
        stealShare: total > 0 ? clamp01((end.steal - first.steal) / total) : 0,
        otherShareMax: Math.max(otherMax, other),
        loadavg1: [load0, loadavg()[0]!],
        ...(unknown !== undefined ? { serverUnknown: unknown } : {}),
      };
      return result;
    },
  };
}

function otherShareBetween(a: Snapshot, b: Snapshot): number | undefined {
  const total = b.total - a.total;
  if (total <= 0) return undefined;
  return clamp01((b.busy - a.busy - (b.own - a.own)) / total);
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}
