import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { createInterface } from "node:readline";
import type { Endpoint } from "../../src/target/types.js";
import { registerChild, stopChild } from "../../src/util/children.js";
import { packageInfo } from "../../src/util/package-root.js";
import type { SseServerOptions, SseServerStats } from "./sse-server.js";

/** Processes for the benchmarks: each client and the server in its own process, measured from outside by /proc. */

export const REPO_ROOT = packageInfo().root;
const HELPERS = join(REPO_ROOT, "bench", "helpers");

/** Debian's python has python3-locust and python3-aiohttp; `python3` on PATH is a pyenv build without them. */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/**
 * CPU time a process has used so far (ns): the sum of `sum_exec_runtime` over its live threads
 * (/proc/PID/task/TID/schedstat, nanosecond resolution). /proc/PID/stat's utime+stime count whole clock ticks (10 ms
 * here), too coarse for a few seconds of a light client; the two are compared in `cpuTicksNs`. A thread that exits
 * inside a window takes its time with it (schedstat of live threads only): clients here keep their threads.
 */
export function cpuNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread exited between readdir and read
    }
  }
  return sum;
}

let clkTck: number | undefined;

/** utime and stime of the whole process (exited threads included), in ns, at clock-tick resolution. */
export function cpuTicksNs(pid: number): { userNs: number; systemNs: number } {
  clkTck ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces) start at ") ": utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { userNs: (Number(rest[11]) * 1e9) / clkTck, systemNs: (Number(rest[12]) * 1e9) / clkTck };
}

/** `node --import tsx FILE ...args` in the repository root: TypeScript helpers as their own processes. */
export function spawnTsx(file: string, args: string[], opts: { stdio?: "pipe" | "inherit" } = {}): ChildProcess {
  // BENCH_BUNDLED=<dir>: run <dir>/<name>.mjs, the esbuild bundle of the helper, instead (a machine with node but no
  // node_modules, e.g. the GPU machine: bench/README.md "Running a bench elsewhere").
  const bundled = process.env.BENCH_BUNDLED;
  const entry = bundled ? [join(bundled, `${basename(file, ".ts")}.mjs`)] : ["--import", "tsx", file];
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", opts.stdio === "inherit" ? "inherit" : "pipe"],
  });
  registerChild(child);
  return child;
}

/** Spawns a command (argument array, no shell) registered for cleanup. */
export function spawnCommand(cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  registerChild(child);
  return child;
}

/** Collects a child's output (the last `limit` characters) for error messages and summaries. */
export function captureOutput(child: ChildProcess, limit = 20_000): () => string {
  let out = "";
  const add = (b: Buffer) => {
    out = (out + b.toString("utf8")).slice(-limit);
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return () => out;
}

/** The first stdout line of a child, parsed as JSON; rejects if it exits first or takes longer than `timeoutMs`. */
export function firstJsonLine<T>(child: ChildProcess, timeoutMs = 30_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString("utf8")).slice(-4000);
    });
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`no output within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    rl.once("line", (line) => {
      clearTimeout(timer);
      rl.close();
      try {
        resolve(JSON.parse(line) as T);
      } catch (e) {
        reject(new Error(`not JSON: ${line} (${String(e)})`));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before its first line: ${stderr}`));
    });
  });
}

export interface SseServerProcess {
  url: string;
  pid: number;
  endpoint: Endpoint;
  stats(): Promise<SseServerStats>;
  /** First-content write times by prompt (hrtime ns), then forgotten by the server. */
  stamps(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/** The SSE server (sse-server.ts) in its own process. */
export async function spawnSseServer(opts: SseServerOptions = {}): Promise<SseServerProcess> {
  const child = spawnTsx(join(HELPERS, "sse-server-main.ts"), [JSON.stringify(opts)]);
  const { url, pid } = await firstJsonLine<{ url: string; pid: number }>(child);
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    return (await res.json()) as T;
  };
  return {
    url,
    pid,
    endpoint: {
      baseUrl: url,
      apis: ["completion", "openai-completions", "openai-chat"],
      modelName: "bench-sse",
      bannedTokenIds: [],
    },
    stats: () => get<SseServerStats>("/stats"),
    stamps: () => get<Record<string, string>>("/stamps"),
    stop: () => stopChild(child, 3000),
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
