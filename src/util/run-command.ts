import { createWriteStream } from "node:fs";
import { registerChild } from "./children.js";
import { CouldNotRunError } from "./errors.js";
import { spawnTied, spawnTiedGroup } from "./tied-spawn.js";

export interface RunCommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Append stdout and stderr to this file. */
  logFile?: string;
  /** Called for every complete output line (stdout and stderr). */
  onLine?: (line: string) => void;
  /**
   * The command starts processes of its own (cmake -> ninja -> compilers): run it in a process group of its own, so
   * they all stop with it, also when tokengate dies (util/tied-spawn.ts spawnTiedGroup). Default: one process.
   */
  processGroup?: boolean;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines of output, for error messages. */
  tail: string[];
}

/** Runs a program with an argument array (never through a shell) and resolves when it exits. */
export function runCommand(cmd: string, args: string[], opts: RunCommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    // Tied to tokengate: the command dies with it, even when tokengate is killed with SIGKILL.
    const spawnIt = opts.processGroup ? spawnTiedGroup : spawnTied;
    const child = spawnIt(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    registerChild(child);
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: "a" }) : undefined;
    const tail: string[] = [];
    const onData = (() => {
      let partial = "";
      return (chunk: Buffer) => {
        log?.write(chunk);
        const text = partial + chunk.toString("utf8");
        const lines = text.split(/\r?\n/);
        partial = lines.pop() ?? "";
        for (const line of lines) {
          tail.push(line);
          if (tail.length > 40) tail.shift();
          opts.onLine?.(line);
        }
      };
    })();
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (err: NodeJS.ErrnoException) => {
      log?.end();
      if (err.code === "ENOENT") {
        reject(new CouldNotRunError(`program not found`, { subject: cmd, hint: `install ${cmd} and put it on PATH` }));
      } else {
        reject(new CouldNotRunError(`could not start: ${err.message}`, { subject: cmd, cause: err }));
      }
    });
    child.once("close", (code, signal) => {
      log?.end();
      resolve({ code, signal, tail });
    });
  });
}

/** True when `cmd` runs and exits 0 (used to detect cmake, a compiler, nvcc, nvidia-smi). */
export async function commandWorks(cmd: string, args: string[] = ["--version"]): Promise<boolean> {
  try {
    const r = await runCommand(cmd, args);
    return r.code === 0;
  } catch {
    return false;
  }
}
