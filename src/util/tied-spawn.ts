import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";

/**
 * Children that die with tokengate, however tokengate dies. src/util/children.ts stops children when tokengate gets
 * SIGINT/SIGTERM or exits; nothing in tokengate runs on SIGKILL (or an OOM kill), so there the child must notice:
 *
 * - `spawnTied` (one process: llama-server, `llama-server --help`, nvidia-smi, git): on Linux the child is started
 *   through util-linux `setpriv --pdeathsig SIGKILL -- <cmd> <args>`. setpriv sets the kernel's parent-death signal
 *   (prctl PR_SET_PDEATHSIG) and then execs the command, so the pid is the command's own (the busy-machine guard
 *   and the Action's post step read it) and the kernel kills it the moment tokengate is gone. The signal survives the
 *   exec but not a fork: the command's own children are not covered (llama-server starts none).
 * - `spawnTiedGroup` (a build: cmake starts ninja/make, which start compilers): a small watchdog (node -e, below)
 *   starts the command as the leader of a new process group and ends the whole group when its own parent (tokengate)
 *   changes, polled every 500 ms, or when it gets SIGTERM/SIGINT (tokengate's stopChild).
 *
 * Caveats, written down because they bite:
 * - PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. Node spawns on the thread
 *   that calls spawn(): tokengate's main thread. A spawn from a worker_thread would kill the child when that worker
 *   ends. No tokengate worker spawns processes; keep it that way.
 * - A short race: if tokengate dies between setpriv's fork and its prctl, the signal is never sent (setpriv does not
 *   re-check its parent). The window is microseconds, at start only.
 * - Without setpriv (macOS, a Linux without util-linux >= 2.33, Windows) or for a command that cannot be resolved to
 *   an executable file (so that spawn's own ENOENT/EACCES error stays what the caller sees), the child is spawned
 *   directly: only children.ts's signal hooks stop it then.
 */

let setprivCache: string | null | undefined;

/** The setpriv executable when it supports `--pdeathsig` (Linux only), else undefined. Looked up once. */
export function setprivPath(): string | undefined {
  if (setprivCache !== undefined) return setprivCache ?? undefined;
  setprivCache = null;
  if (process.platform !== "linux") return undefined;
  const found = resolveExecutable("setpriv", process.env);
  if (found === undefined) return undefined;
  const help = spawnSync(found, ["--help"], { encoding: "utf8", timeout: 5000 });
  if (help.status === 0 && /--pdeathsig/.test(`${help.stdout}${help.stderr}`)) setprivCache = found;
  return setprivCache ?? undefined;
}

/**
 * The absolute path `cmd` runs as: itself (against `cwd`) when it contains a slash, else the first executable file
 * of that name on the PATH of `env`. Undefined when there is none.
 */
export function resolveExecutable(cmd: string, env: NodeJS.ProcessEnv, cwd = process.cwd()): string | undefined {
  const usable = (file: string): boolean => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  };
  if (cmd.includes("/")) {
    const file = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    return usable(file) ? file : undefined;
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const file = join(resolve(cwd, dir), cmd);
    if (usable(file)) return file;
  }
  return undefined;
}

/** spawn(), with the child killed by the kernel when tokengate dies (setpriv --pdeathsig SIGKILL where available). */
export function spawnTied(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const setpriv = setprivPath();
  const file = setpriv ? resolveExecutable(cmd, options.env ?? process.env, cwdOf(options)) : undefined;
  if (!setpriv || file === undefined) return spawn(cmd, args, options);
  return spawn(setpriv, ["--pdeathsig", "SIGKILL", "--", file, ...args], options);
}

/** How long the watchdog waits after SIGTERM to the group before SIGKILL; below children.ts's graces (3-5 s). */
export const GROUP_GRACE_MS = 2000;

/**
 * The watchdog, run as `node -e WATCHDOG -- <cmd> <args>` (constant code; the command and its arguments arrive in
 * argv, never through a shell). Exits as its command did: the same code, or the same signal.
 */
const WATCHDOG = `
const { spawn } = require("node:child_process");
const [cmd, ...args] = process.argv.slice(1);
const parent = process.ppid;
const child = spawn(cmd, args, { stdio: "inherit", detached: true });
let stopping = false;
const signalGroup = (sig) => { try { process.kill(-child.pid, sig); } catch {} };
const stop = (sig) => {
  if (stopping) return;
  stopping = true;
  signalGroup(sig);
  setTimeout(() => signalGroup("SIGKILL"), ${GROUP_GRACE_MS}).unref();
};
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
const watch = setInterval(() => { if (process.ppid !== parent) stop("SIGTERM"); }, 500);
child.on("error", (e) => { process.stderr.write(cmd + ": " + e.message + "\\n"); process.exit(127); });
child.on("exit", (code, sig) => {
  clearInterval(watch);
  // Stopping: whatever the leader left behind in its group (a compiler mid-file) goes too.
  if (stopping) signalGroup("SIGKILL");
  if (sig) {
    process.removeAllListeners(sig);
    try { process.kill(process.pid, sig); } catch {}
  }
  process.exit(code ?? 1);
});
`;

/**
 * For a command that starts processes of its own (a build): they all stop when tokengate stops it or dies. The
 * returned child is the watchdog (its pid is not the command's); it relays stdio and the exit status. Windows has no
 * process groups: a plain spawn there. A command that does not resolve is spawned directly, for spawn's own error.
 */
export function spawnTiedGroup(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const file = resolveExecutable(cmd, options.env ?? process.env, cwdOf(options));
  if (process.platform === "win32" || file === undefined) return spawn(cmd, args, options);
  return spawn(process.execPath, ["-e", WATCHDOG, "--", file, ...args], options);
}

function cwdOf(options: SpawnOptions): string {
  return options.cwd === undefined ? process.cwd() : resolve(String(options.cwd));
}
