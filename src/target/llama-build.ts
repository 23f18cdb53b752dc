import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir } from "../util/cache-dir.js";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { commandWorks, runCommand } from "../util/run-command.js";

/**
 * `tokengate server build`: builds llama-server, llama-bench and llama-quantize from the llama.cpp source that
 * node-llama-cpp ships as a git bundle (`llama/gitRelease.bundle`), so no download is needed.
 *
 * Static build (shared builds carry an absolute RUNPATH and break when the cache moves). CUDA when asked, or with
 * `auto` when nvcc is present AND nvidia-smi lists a GPU: our dev/CI machines have nvcc but no GPU, and a CUDA build
 * there would take far longer and produce a binary that cannot use its backend.
 *
 * Cached in `<cache>/llama-server/<tag>-<backend>-<flags hash>/bin/`, built in a temporary folder and renamed into
 * place, so an interrupted build never leaves a half cache that looks complete.
 */
export type Backend = "cpu" | "cuda";
export type BackendChoice = Backend | "auto";

export const BUILD_TARGETS = ["llama-server", "llama-bench", "llama-quantize"] as const;

const BASE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_BUILD_APP=OFF",
  // Without this the build downloads the web UI, which fails offline.
  "-DLLAMA_USE_PREBUILT_UI=OFF",
  "-DLLAMA_OPENSSL=OFF",
];

export interface LlamaSource {
  bundle: string;
  tag: string;
}

export interface BuildPlan {
  source: LlamaSource;
  backend: Backend;
  cmakeFlags: string[];
  key: string;
  dir: string;
  binDir: string;
}

export interface BuildOptions {
  backend?: BackendChoice;
  /** Extra cmake flags (e.g. `-DCMAKE_CUDA_ARCHITECTURES=90`); part of the cache key. */
  extraFlags?: string[];
  jobs?: number;
  force?: boolean;
  quiet?: boolean;
  /**
   * Build another llama.cpp source instead of node-llama-cpp's bundle: a git bundle, a git checkout or a plain source
   * folder (e.g. the llama.cpp of the pull request being gated). Its cache key uses `sourceTag`, else the checkout's
   * commit, else a hash of the folder's path (a plain folder that changed needs `--force`).
   */
  source?: string;
  sourceTag?: string;
}

/** node-llama-cpp's package folder (its `exports` hide package.json, so walk up from the resolved entry). */
export function nodeLlamaCppDir(): string {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve("node-llama-cpp"));
  } catch (cause) {
    throw new CouldNotRunError("node-llama-cpp is not installed", {
      hint: "run `npm ci` in the tokengate folder",
      cause,
    });
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "node-llama-cpp")
      return dir;
  }
  throw new CouldNotRunError("node-llama-cpp's package folder was not found", { subject: entry });
}

export function llamaSource(): LlamaSource {
  const llamaDir = join(nodeLlamaCppDir(), "llama");
  const bundle = join(llamaDir, "gitRelease.bundle");
  if (!existsSync(bundle)) {
    throw new CouldNotRunError("node-llama-cpp has no llama.cpp source bundle", { subject: bundle });
  }
  const info = JSON.parse(readFileSync(join(llamaDir, "llama.cpp.info.json"), "utf8")) as { tag?: string };
  return { bundle, tag: info.tag ?? "unknown" };
}

async function gpuPresent(): Promise<boolean> {
  return commandWorks("nvidia-smi", ["-L"]);
}

export async function resolveBackend(choice: BackendChoice): Promise<Backend> {
  if (choice === "cpu") return "cpu";
  const hasNvcc = await commandWorks("nvcc", ["--version"]);
  if (choice === "cuda") {
    if (!hasNvcc) {
      throw new CouldNotRunError("a CUDA build needs nvcc, which was not found", {
        subject: "--backend cuda",
        hint: "install the CUDA toolkit and put nvcc on PATH, or use --backend cpu",
      });
    }
    return "cuda";
  }
  return hasNvcc && (await gpuPresent()) ? "cuda" : "cpu";
}

export function planBuild(source: LlamaSource, backend: Backend, extraFlags: string[] = []): BuildPlan {
  const cmakeFlags = [
    ...BASE_FLAGS,
    ...(backend === "cuda" ? ["-DGGML_CUDA=ON"] : ["-DGGML_NATIVE=ON"]),
    ...extraFlags,
  ];
  const hash = createHash("sha256").update(cmakeFlags.join("\n")).digest("hex").slice(0, 12);
  const key = `${source.tag}-${backend}-${hash}`;
  const dir = cacheDir("llama-server", key);
  return { source, backend, cmakeFlags, key, dir, binDir: join(dir, "bin") };
}

export function cachedBinary(
  plan: BuildPlan,
  name: (typeof BUILD_TARGETS)[number] = "llama-server",
): string | undefined {
  const p = join(plan.binDir, name);
  return existsSync(p) && existsSync(join(plan.dir, "build-info.json")) ? p : undefined;
}

/** The server binary from a default CPU/auto build if one is cached, without building. */
export async function findCachedServer(): Promise<string | undefined> {
  try {
    const source = llamaSource();
    const backend = await resolveBackend("auto");
    return cachedBinary(planBuild(source, backend));
  } catch {
    return undefined;
  }
}

/** The source to build: node-llama-cpp's bundle, or `--source` (a bundle file, a git checkout or a plain folder). */
export async function resolveSource(source?: string, sourceTag?: string): Promise<LlamaSource & { isDir: boolean }> {
  if (!source) return { ...llamaSource(), ...(sourceTag ? { tag: sourceTag } : {}), isDir: false };
  if (!existsSync(source)) {
    throw new BadInputError("llama.cpp source not found", {
      subject: source,
      hint: "--source path/to/llama.cpp (a checkout or a folder with CMakeLists.txt), or a git bundle file",
    });
  }
  const isDir = statSync(source).isDirectory();
  if (isDir && !existsSync(join(source, "CMakeLists.txt"))) {
    throw new BadInputError("not a llama.cpp source folder (no CMakeLists.txt)", {
      subject: source,
      hint: "--source path/to/llama.cpp",
    });
  }
  let tag = sourceTag;
  if (!tag && isDir) {
    const head = await runCommand("git", ["-C", source, "rev-parse", "--short=12", "HEAD"]).catch(() => undefined);
    const commit = head?.code === 0 ? head.tail.at(-1)?.trim() : undefined;
    tag = commit
      ? `git-${commit}`
      : `dir-${createHash("sha256").update(resolvePath(source)).digest("hex").slice(0, 12)}`;
  }
  tag ??= `bundle-${createHash("sha256").update(resolvePath(source)).digest("hex").slice(0, 12)}`;
  return { bundle: resolvePath(source), tag, isDir };
}

export async function buildLlamaServer(
  opts: BuildOptions = {},
): Promise<{ plan: BuildPlan; serverBin: string; cached: boolean }> {
  const source = await resolveSource(opts.source, opts.sourceTag);
  const backend = await resolveBackend(opts.backend ?? "auto");
  const plan = planBuild(source, backend, opts.extraFlags);
  const hit = cachedBinary(plan);
  if (hit && !opts.force) return { plan, serverBin: hit, cached: true };

  for (const [tool, args, hint] of [
    ["cmake", ["--version"], "install cmake (Debian: apt-get install cmake)"],
    ["c++", ["--version"], "install a C++ compiler (Debian: apt-get install g++)"],
    ["git", ["--version"], "install git (Debian: apt-get install git)"],
  ] as const) {
    if (!(await commandWorks(tool, [...args]))) {
      throw new CouldNotRunError(`building llama-server needs ${tool}, which was not found`, { subject: tool, hint });
    }
  }
  const jobs = opts.jobs ?? availableParallelism();
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new BadInputError(`must be a positive integer, got ${jobs}`, { subject: "--jobs", hint: "--jobs 4" });
  }

  const work = `${plan.dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const logFile = join(work, "build.log");
  const fail = (what: string, tail: string[]) =>
    new CouldNotRunError(`${what} failed; last lines of ${logFile}:\n${tail.slice(-15).join("\n")}`, {
      subject: "tokengate server build",
      hint: "fix the cause above (a missing compiler or library), then run `tokengate server build` again",
    });

  const started = Date.now();
  // A source folder is built in place (its own build tree goes to our temp folder); a bundle is cloned first.
  const srcDir = source.isDir ? source.bundle : join(work, "src");
  if (!source.isDir) {
    // processGroup: git, cmake and the build tool start processes of their own; they all stop with tokengate.
    const clone = await runCommand("git", ["clone", "--quiet", source.bundle, srcDir], { logFile, processGroup: true });
    if (clone.code !== 0) throw fail("cloning the llama.cpp bundle", clone.tail);
  }

  const generator = (await commandWorks("ninja", ["--version"])) ? ["-G", "Ninja"] : [];
  // ccache, where it is installed, makes rebuilding another llama.cpp ref (an A/B arm's source) cheap: the objects of
  // unchanged files are reused. It never changes the binary, so it is not part of the cache key.
  const launcher = (await commandWorks("ccache", ["--version"]))
    ? [
        "-DCMAKE_C_COMPILER_LAUNCHER=ccache",
        "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache",
        "-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache",
      ]
    : [];
  const configure = await runCommand(
    "cmake",
    ["-S", srcDir, "-B", join(work, "build"), ...generator, ...plan.cmakeFlags, ...launcher],
    { logFile, processGroup: true },
  );
  if (configure.code !== 0) throw fail("cmake configure", configure.tail);

  const progress = createProgress({
    label: `building llama-server (${backend})`,
    total: 100,
    unit: "%",
    quiet: opts.quiet,
  });
  const build = await runCommand(
    "cmake",
    ["--build", join(work, "build"), "--target", ...BUILD_TARGETS, "-j", String(jobs)],
    {
      logFile,
      processGroup: true,
      onLine: (line) => {
        // Make prints "[ 45%] Building ..."; Ninja prints "[123/456] Building ...".
        const pct = /^\[\s*(\d+)%\]/.exec(line);
        const frac = /^\[(\d+)\/(\d+)\]/.exec(line);
        if (pct) progress.update(Number(pct[1]), line.slice(pct[0].length).trim().slice(0, 60));
        else if (frac) progress.update(Math.floor((100 * Number(frac[1])) / Number(frac[2])), "");
      },
    },
  );
  if (build.code !== 0) throw fail("cmake build", build.tail);
  progress.done(`${Math.round((Date.now() - started) / 1000)} s`);

  mkdirSync(join(work, "bin"), { recursive: true });
  for (const t of BUILD_TARGETS) copyFileSync(join(work, "build", "bin", t), join(work, "bin", t));
  writeFileSync(
    join(work, "build-info.json"),
    `${JSON.stringify({ tag: source.tag, backend, cmakeFlags: plan.cmakeFlags, buildSeconds: (Date.now() - started) / 1000, builtAt: new Date().toISOString() }, null, 2)}\n`,
  );
  // Keep only what is needed: the source and object files are hundreds of MB.
  rmSync(join(work, "src"), { recursive: true, force: true });
  rmSync(join(work, "build"), { recursive: true, force: true });
  rmSync(plan.dir, { recursive: true, force: true });
  mkdirSync(dirname(plan.dir), { recursive: true });
  renameSync(work, plan.dir);
  return { plan, serverBin: join(plan.binDir, "llama-server"), cached: false };
}
