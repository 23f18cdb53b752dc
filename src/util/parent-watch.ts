/**
 * tokengate stops when the process that started it is gone. `npx tokengate run` is npx -> `sh -c tokengate ...` ->
 * node tokengate; SIGTERM to npx (timeout(1) on the wrapper, a CI runner) is relayed to the shell, which dies of it,
 * and tokengate (with its llama-server) was left running under pid 1 until the run ended (seen here, npm 11.19).
 *
 * Why polling the parent pid: nothing else works for a node process. The kernel's parent-death signal
 * (PR_SET_PDEATHSIG) cannot be set on oneself from JavaScript, and re-executing tokengate under setpriv would add a
 * process in front of every run. `process.ppid` asks the kernel each time (getppid), so a 1 s poll notices within a
 * second; an orphan's new parent is pid 1 or a subreaper (systemd --user, a container's init), so the rule is "the
 * parent changed", not "the parent is 1".
 *
 * What happens then: tokengate sends itself SIGTERM, so a vanished parent takes the same path as SIGTERM: the hooks of
 * src/util/children.ts stop the servers and exit with 143, and whatever else listens for SIGTERM runs too.
 *
 * Deliberately detached runs (`setsid tokengate ...`, `tokengate ... &` from a shell that then exits) would stop too:
 * TOKENGATE_OUTLIVE_PARENT=1 turns the watch off, and the message says so.
 *
 * Not covered: SIGKILL to npx itself leaves its `sh -c` alive and still waiting on tokengate, so tokengate's parent
 * does not change; the run goes on to its end (its servers stay tied to tokengate, src/util/tied-spawn.ts).
 */
export const OUTLIVE_PARENT_ENV = "TOKENGATE_OUTLIVE_PARENT";

export interface ParentWatch {
  stop(): void;
}

export interface ParentWatchOptions {
  intervalMs?: number;
  /** Called once the parent is gone, before the SIGTERM. Default: a line on stderr. */
  onGone?: (parent: number, now: number) => void;
  env?: NodeJS.ProcessEnv;
}

/** Starts the watch (an unref'd timer: it never keeps tokengate alive). No-op with TOKENGATE_OUTLIVE_PARENT=1. */
export function watchParent(opts: ParentWatchOptions = {}): ParentWatch {
  const env = opts.env ?? process.env;
  if (env[OUTLIVE_PARENT_ENV] === "1") return { stop() {} };
  const parent = process.ppid;
  const onGone =
    opts.onGone ??
    ((was: number, now: number) =>
      process.stderr.write(
        `tokengate: the process that started it (pid ${was}) is gone (parent now pid ${now}); stopping the run as on SIGTERM (set ${OUTLIVE_PARENT_ENV}=1 to keep running detached)\n`,
      ));
  const timer = setInterval(() => {
    const now = process.ppid;
    if (now === parent) return;
    clearInterval(timer);
    onGone(parent, now);
    process.kill(process.pid, "SIGTERM");
  }, opts.intervalMs ?? 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
