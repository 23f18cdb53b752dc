import type { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { registerChild } from "../util/children.js";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { spawnTied } from "../util/tied-spawn.js";
import { findCachedServer } from "./llama-build.js";

/**
 * Which llama-server to run: `--server-bin`, else `llama-server` on PATH, else the cached `tokengate server build`.
 */
export type ServerBinSource = "flag" | "path" | "cache";

export interface ResolvedServerBin {
  path: string;
  source: ServerBinSource;
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First `name` on PATH that is an executable file (what a shell would run), without spawning anything. */
export function findOnPath(name: string, pathVar = process.env.PATH ?? ""): string | undefined {
  for (const dir of pathVar.split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, name);
    if (isExecutableFile(p)) return p;
  }
  return undefined;
}

export interface ResolveServerBinOptions {
  /** An explicit binary (`--server-bin`); relative paths resolve against the current directory. */
  serverBin?: string;
  /** The flag name used in messages. Default `--server-bin`. */
  subject?: string;
  /** Skip the cache lookup (tests). */
  noCache?: boolean;
  pathVar?: string;
}

export async function resolveServerBin(opts: ResolveServerBinOptions = {}): Promise<ResolvedServerBin> {
  const subject = opts.subject ?? "--server-bin";
  if (opts.serverBin !== undefined) {
    const p = isAbsolute(opts.serverBin) ? opts.serverBin : resolve(opts.serverBin);
    let isFile = false;
    try {
      isFile = statSync(p).isFile();
    } catch {
      throw new BadInputError(`llama-server binary not found: ${p}`, {
        subject,
        hint: "pass the path of a llama-server executable, e.g. --server-bin ./build/bin/llama-server, or omit it to use PATH or `tokengate server build`",
      });
    }
    if (!isFile || !isExecutableFile(p)) {
      throw new BadInputError(`${p} is not an executable file`, {
        subject,
        hint: isFile
          ? `make it executable (chmod +x ${p}) or pass another binary`
          : "pass the llama-server executable, not a folder",
      });
    }
    return { path: p, source: "flag" };
  }
  const onPath = findOnPath("llama-server", opts.pathVar);
  if (onPath) return { path: onPath, source: "path" };
  const cached = opts.noCache ? undefined : await findCachedServer();
  if (cached) return { path: cached, source: "cache" };
  throw new CouldNotRunError("no llama-server binary: none given, none on PATH, none built by tokengate", {
    subject,
    hint: "run `tokengate server build` once (builds from the llama.cpp source bundled with node-llama-cpp, no download), or pass --server-bin /path/to/llama-server",
  });
}

const helpCache = new Map<string, Promise<string>>();

/**
 * The binary's `--help` text (stdout + stderr), cached per path. Empty when it cannot be run or prints nothing; the
 * caller then simply does not use optional flags. Bounded by `timeoutMs` so a binary that hangs on `--help` (a stand-in,
 * a wrapper script) cannot stall start-up.
 */
export function serverHelp(bin: string, timeoutMs = 10_000): Promise<string> {
  let p = helpCache.get(bin);
  if (!p) {
    p = new Promise<string>((done) => {
      let out = "";
      let child: ReturnType<typeof spawn>;
      try {
        child = spawnTied(bin, ["--help"], { stdio: ["ignore", "pipe", "pipe"] });
      } catch {
        done("");
        return;
      }
      // No pid: the spawn failed and "error" follows; such a child never exits, so it must not be registered.
      if (child.pid !== undefined) registerChild(child);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const add = (b: Buffer) => {
        if (out.length < 1_000_000) out += b.toString("utf8");
      };
      child.stdout?.on("data", add);
      child.stderr?.on("data", add);
      child.once("error", () => {
        clearTimeout(timer);
        done("");
      });
      child.once("close", () => {
        clearTimeout(timer);
        done(out);
      });
    });
    helpCache.set(bin, p);
  }
  return p;
}

/** True when `--help` lists `flag` as a whole word (e.g. `--no-webui`, which older builds lack). */
export function helpHasFlag(help: string, flag: string): boolean {
  const escaped = flag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[\\s,])${escaped}(?=[\\s,=]|$)`, "m").test(help);
}
