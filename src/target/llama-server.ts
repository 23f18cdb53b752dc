import type { ChildProcess } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { inspectModel, type ModelInfo } from "../model/inspect.js";
import { registerChild, stopChild } from "../util/children.js";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { registerSecret } from "../util/secrets.js";
import { spawnTied } from "../util/tied-spawn.js";
import { ChildServerTarget } from "./child-server-target.js";
import { getJson, pollUntilReady, probeLlamaHealth } from "./health.js";
import { assertPortUsable, freePort, LOOPBACK } from "./port.js";
import { helpHasFlag, type ResolvedServerBin, resolveServerBin, serverHelp } from "./server-bin.js";
import type { Endpoint, ModelFingerprint, Target, TargetFingerprint } from "./types.js";

/**
 * The llama-server target: starts llama.cpp's server on 127.0.0.1 for one model, waits until `/health` says ok, and
 * always stops it (SIGTERM, then SIGKILL), also when tokengate itself is interrupted (src/util/children.ts).
 */
export interface LlamaServerTargetOptions {
  /** The GGUF model file. */
  model: string;
  /** llama-server executable (`--server-bin`). Default: `llama-server` on PATH, else the `tokengate server build` cache. */
  serverBin?: string;
  /** Port on 127.0.0.1. Default: a free port. A taken port is a BadInputError. */
  port?: number;
  /** CPU threads (`-t`). Default: the number of cores. Not added when `serverFlags` sets `-t`/`--threads`. */
  threads?: number;
  /**
   * Extra llama-server flags from the suite (e.g. `["--parallel", "4", "-c", "4096"]`), appended after tokengate's own.
   * Flags tokengate owns (`--host`, `--port`, `-m`/`--model`, `--api-key`) are rejected.
   */
  serverFlags?: string[];
  /** Where the server's stdout+stderr go. Default: `<outDir>/llama-server.log`, else a new temp folder. */
  logFile?: string;
  outDir?: string;
  /** How long to wait for `/health` to say ok. Default 120 000 ms (large models load slowly from cold disks). */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop. Default 5000 ms. */
  stopGraceMs?: number;
  /**
   * Make the server require this API key. Passed through the environment (`LLAMA_API_KEY`), never on the command line
   * (visible in `ps`) and never in the fingerprint.
   */
  apiKey?: string;
  /** The `model` field for OpenAI requests. Default: the id the server lists at `/v1/models`. */
  modelName?: string;
  /**
   * Extra environment variables for the server, set over tokengate's own environment (e.g. `CUDA_VISIBLE_DEVICES` for
   * a GPU subset). Never `LLAMA_API_KEY` (use `apiKey`) nor `LLAMA_ARG_*` (use `serverFlags`: a flag set through the
   * environment would not show in the recorded flags): both are a BadInputError. Default: none.
   */
  env?: Record<string, string>;
}

/** `/props` fields tokengate reads (llama-server b1-80fb11a; see shared/reference/llama-server/props.txt). */
export interface LlamaProps {
  build_info?: string;
  model_path?: string;
  model_alias?: string;
  model_ftype?: string;
  total_slots?: number;
  default_generation_settings?: { n_ctx?: number; params?: { chat_format?: string } };
  chat_template?: string;
  is_sleeping?: boolean;
}

/** Flags whose values tokengate decides; a suite that sets them would break start-up or leak a secret. */
const OWNED_FLAGS: Record<string, string> = {
  "--host": "tokengate binds 127.0.0.1 only",
  "--port": "use the port option (--port of tokengate), or omit it for a free port",
  "-m": "use the model option",
  "--model": "use the model option",
  "-mu": "give a local GGUF file as the model",
  "--model-url": "give a local GGUF file as the model",
  "-hf": "give a local GGUF file as the model",
  "-hfr": "give a local GGUF file as the model",
  "--hf-repo": "give a local GGUF file as the model",
  "--api-key": "set the key in an environment variable instead: flags are recorded in results and visible in `ps`",
  "--api-key-file": "set the key in an environment variable instead",
};

const THREAD_FLAGS = new Set(["-t", "--threads"]);

/** Throws BadInputError for a server flag tokengate owns (also the `--flag=value` form). */
export function checkServerFlags(flags: string[], subject = "server flags"): void {
  for (const [i, f] of flags.entries()) {
    if (typeof f !== "string") {
      throw new BadInputError(`flag ${i} is not a string: ${JSON.stringify(f)}`, {
        subject,
        hint: 'give flags as a list of strings, e.g. ["--parallel", "4"]',
      });
    }
    const name = f.split("=")[0] ?? f;
    const why = Object.hasOwn(OWNED_FLAGS, name) ? OWNED_FLAGS[name] : undefined;
    if (why !== undefined) {
      throw new BadInputError(`${name} is set by tokengate and cannot be passed as a server flag`, {
        subject,
        hint: `remove ${name}: ${why}`,
      });
    }
    if (/^-\S*\s/.test(f)) {
      throw new BadInputError(`flag ${JSON.stringify(f)} contains a space; flags are passed without a shell`, {
        subject,
        hint: 'split flag and value into two items, e.g. ["--parallel", "4"]',
      });
    }
  }
}

/** Throws BadInputError for an extra environment variable that would bypass the key or flag handling. */
export function checkServerEnv(env: Record<string, string>, subject = "server environment"): void {
  for (const [k, v] of Object.entries(env)) {
    if (k === "LLAMA_API_KEY" || k.startsWith("LLAMA_ARG_")) {
      throw new BadInputError(`${k} cannot be set through the server environment`, {
        subject,
        hint:
          k === "LLAMA_API_KEY"
            ? "give the key through the apiKey option (target.apiKeyEnv): it is never recorded"
            : 'pass the setting as a server flag instead, e.g. serverFlags: ["--parallel", "4"], so it is recorded',
      });
    }
    if (typeof v !== "string" || k === "" || k.includes("=")) {
      throw new BadInputError(`${JSON.stringify(k)}=${JSON.stringify(v)} is not a valid environment variable`, {
        subject,
        hint: 'give names and string values, e.g. { CUDA_VISIBLE_DEVICES: "0,1" }',
      });
    }
  }
}

/** The value after `-t`/`--threads` in user flags, if any. */
function userThreads(flags: string[]): string | undefined {
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i] ?? "";
    if (THREAD_FLAGS.has(f)) return flags[i + 1];
    const [name, value] = f.split("=", 2);
    if (name !== undefined && THREAD_FLAGS.has(name) && value !== undefined) return value;
  }
  return undefined;
}

/** The last `n` lines of a (possibly large) log file; reads at most the final 64 KiB. */
export function logTail(file: string, n = 20): string[] {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString("utf8").split(/\r?\n/);
    while (lines.length > 0 && lines[lines.length - 1]?.trim() === "") lines.pop();
    // The first line may be cut in the middle when the file is larger than what we read.
    if (size > len) lines.shift();
    return lines.slice(-n);
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function formatTail(file: string, n = 20): string {
  const tail = logTail(file, n);
  return tail.length === 0
    ? `(the log ${file} is empty)`
    : `last lines of ${file}:\n${tail.map((l) => `  | ${l}`).join("\n")}`;
}

/**
 * The child's environment. llama.cpp reads `LLAMA_ARG_*` (any flag) and `LLAMA_API_KEY` from the environment; a stray
 * variable would change the server without showing up in the recorded flags, so they are removed and the key, if any,
 * is set explicitly.
 */
function childEnv(apiKey: string | undefined, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("LLAMA_ARG_") || k === "LLAMA_API_KEY") continue;
    env[k] = v;
  }
  // checkServerEnv already refused LLAMA_API_KEY / LLAMA_ARG_* here; the key is set last all the same.
  Object.assign(env, extra);
  if (apiKey !== undefined) env.LLAMA_API_KEY = apiKey;
  return env;
}

/** `1.5` below 10 s, whole seconds above: error messages should show the deadline the user set. */
function seconds(ms: number): string {
  return ms < 10_000 ? String(Math.round(ms / 100) / 10) : String(Math.round(ms / 1000));
}

const BIND_FAILED = /couldn't bind HTTP server socket/;

class LlamaServerTargetImpl extends ChildServerTarget {
  readonly kind = "llama-server" as const;
  private readonly opts: LlamaServerTargetOptions;
  private bin: ResolvedServerBin | undefined;
  private model: ModelInfo | undefined;
  private props: LlamaProps | undefined;
  /** Flags as recorded in the fingerprint: ours without host/port/model path (they vary per run), then the user's. */
  private recordedFlags: string[] = [];
  private threads: string | undefined;
  private slotSaveDir: string | undefined;
  readonly logFile: string;

  constructor(opts: LlamaServerTargetOptions) {
    super("llama-server target was stopped", opts.stopGraceMs ?? 5000);
    this.opts = opts;
    if (opts.apiKey !== undefined) registerSecret(opts.apiKey);
    this.logFile = resolve(
      opts.logFile ?? join(opts.outDir ?? mkdtempSync(join(tmpdir(), "tokengate-llama-server-")), "llama-server.log"),
    );
  }

  override async stop(): Promise<void> {
    try {
      await super.stop();
    } finally {
      if (this.slotSaveDir) rmSync(this.slotSaveDir, { recursive: true, force: true });
    }
  }

  protected async doStart(outerSignal?: AbortSignal): Promise<Endpoint> {
    const signal = outerSignal ? AbortSignal.any([outerSignal, this.lifetime.signal]) : this.lifetime.signal;
    signal.throwIfAborted();
    const opts = this.opts;
    const userFlags = opts.serverFlags ?? [];
    checkServerFlags(userFlags);
    if (opts.env) checkServerEnv(opts.env);
    if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 1)) {
      throw new BadInputError(`must be a positive integer, got ${opts.threads}`, {
        subject: "threads",
        hint: "threads: 4",
      });
    }
    if (opts.readyTimeoutMs !== undefined && !(opts.readyTimeoutMs > 0)) {
      throw new BadInputError(`must be a positive number of milliseconds, got ${opts.readyTimeoutMs}`, {
        subject: "ready timeout",
        hint: "120000 (two minutes)",
      });
    }
    this.bin = await resolveServerBin({ serverBin: opts.serverBin });
    const modelPath = resolve(opts.model);
    this.model = await inspectModel(modelPath);
    if (opts.port !== undefined) await assertPortUsable(opts.port);
    signal.throwIfAborted();

    const help = await serverHelp(this.bin.path);
    const ours: string[] = ["--metrics"];
    this.threads = userThreads(userFlags);
    if (this.threads === undefined) {
      this.threads = String(opts.threads ?? availableParallelism());
      ours.push("-t", this.threads);
    }
    // The web UI is useless for a benchmark and `--no-webui` only exists in newer builds: ask this binary's --help.
    if (helpHasFlag(help, "--no-webui")) ours.push("--no-webui");
    this.recordedFlags = [...ours, ...userFlags];
    // `--slot-save-path` only to let POST /slots/{id}?action=erase work (llama-server answers every slot action with
    // HTTP 501 without it): the load tests erase the slots between probes (src/suite/probe-reset.ts). It has no effect
    // on serving; an empty temp dir, removed at stop, and not recorded (a per-run path, like the port).
    const unrecorded: string[] = [];
    if (helpHasFlag(help, "--slot-save-path") && !userFlags.some((f) => f.split("=")[0] === "--slot-save-path")) {
      this.slotSaveDir = mkdtempSync(join(tmpdir(), "tokengate-slot-save-"));
      unrecorded.push("--slot-save-path", this.slotSaveDir);
    }

    mkdirSync(dirname(this.logFile), { recursive: true });
    closeSync(openSync(this.logFile, "w"));

    // An automatically chosen port can be taken between our probe and the server's bind; then try another one.
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort());
      const args = ["-m", modelPath, "--host", LOOPBACK, "--port", String(port), ...ours, ...unrecorded, ...userFlags];
      try {
        await this.launch(this.bin.path, args, port, signal);
        break;
      } catch (err) {
        const retry =
          opts.port === undefined &&
          attempt < 3 &&
          this.exited &&
          BIND_FAILED.test(logTail(this.logFile, 40).join("\n"));
        if (!retry) throw err;
      }
    }

    const baseUrl = this.baseUrl();
    const headers = this.authHeaders();
    this.props = await getJson<LlamaProps>(`${baseUrl}/props`, { headers, signal })
      .then((r) => r.json)
      .catch(() => undefined);
    const listed = await getJson<{ data?: { id?: string }[] }>(`${baseUrl}/v1/models`, { headers, signal })
      .then((r) => r.json?.data?.[0]?.id)
      .catch(() => undefined);
    this.endpoint = {
      baseUrl,
      apis: ["completion", "openai-completions", "openai-chat"],
      ...(opts.apiKey !== undefined ? { apiKey: opts.apiKey } : {}),
      modelName: opts.modelName ?? listed ?? this.props?.model_alias ?? basename(modelPath),
      bannedTokenIds: this.model.bannedTokenIds,
      metricsUrl: `${baseUrl}/metrics`,
      logFile: this.logFile,
    };
    return this.endpoint;
  }

  private port: number | undefined;

  private baseUrl(): string {
    return `http://${LOOPBACK}:${this.port}`;
  }

  private authHeaders(): Record<string, string> | undefined {
    return this.opts.apiKey !== undefined ? { authorization: `Bearer ${this.opts.apiKey}` } : undefined;
  }

  /** Spawns the server with its log on `this.logFile` and waits for health; on any failure the child is gone. */
  private async launch(bin: string, args: string[], port: number, signal: AbortSignal): Promise<void> {
    this.port = port;
    this.exited = false;
    const fd = openSync(this.logFile, "a");
    let child: ChildProcess;
    try {
      // The command line goes into the log (an artifact) so a failed start can be reproduced by hand. No secret is
      // on it: the API key travels in the environment.
      writeSync(fd, `# tokengate: ${[bin, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}\n`);
      // The child writes straight into the file: no pipe through this process, so a busy event loop cannot stall the
      // server on a full pipe, and the log survives tokengate dying. spawnTied: the kernel kills the server when
      // tokengate dies, even by SIGKILL (setpriv --pdeathsig); the pid stays the server's own.
      child = spawnTied(bin, args, { stdio: ["ignore", fd, fd], env: childEnv(this.opts.apiKey, this.opts.env) });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    // A spawn that failed outright (ENOENT, EACCES) has no pid and will never emit "exit": registering it would make
    // stopChild wait forever for an exit that cannot come.
    if (child.pid !== undefined) registerChild(child);

    const timeoutMs = this.opts.readyTimeoutMs ?? 120_000;
    const failFast = new Promise<never>((_, reject) => {
      child.once("error", (err: NodeJS.ErrnoException) => {
        this.exited = true;
        reject(
          new CouldNotRunError(`could not start llama-server: ${err.code ?? err.message}`, {
            subject: bin,
            hint: "check that the file is a llama-server executable for this machine, or pass another with --server-bin",
            cause: err,
          }),
        );
      });
      child.once("exit", (code, sig) => {
        this.exited = true;
        const how = sig ? `was killed by ${sig}` : `exited with code ${code}`;
        reject(
          new CouldNotRunError(`llama-server ${how} while starting; ${formatTail(this.logFile)}`, {
            subject: bin,
            hint: "the log above says why (a bad flag, a model it cannot load, too little memory); fix that and run again",
          }),
        );
      });
    });
    // Exits after a successful start are seen through alive(); keep the rejection from being unhandled.
    failFast.catch(() => {});

    let result: Awaited<ReturnType<typeof pollUntilReady>>;
    try {
      result = await pollUntilReady(
        (remainingMs, s) => probeLlamaHealth(this.baseUrl(), { timeoutMs: remainingMs, signal: s }),
        { timeoutMs, signal, failFast },
      );
    } catch (err) {
      if (!this.exited) await stopChild(child, this.opts.stopGraceMs ?? 5000);
      if (signal.aborted && !(err instanceof CouldNotRunError)) {
        throw new CouldNotRunError("llama-server start was cancelled", { subject: bin, cause: err });
      }
      throw err;
    }
    if (!result.ready) {
      await stopChild(child, this.opts.stopGraceMs ?? 5000);
      throw new CouldNotRunError(
        `llama-server did not become healthy within ${seconds(timeoutMs)} s (last /health: ${result.detail}); it was stopped; ${formatTail(this.logFile)}`,
        {
          subject: `${LOOPBACK}:${port}`,
          hint: "a large model on a slow disk can need longer: raise the ready timeout; otherwise the log says what the server was doing",
        },
      );
    }
  }

  async fingerprint(): Promise<TargetFingerprint> {
    this.model ??= await inspectModel(resolve(this.opts.model));
    const { bannedTokenIds: _banned, ...model } = this.model;
    const props = this.props;
    const details: Record<string, string | number | boolean> = {};
    if (this.bin) {
      details.serverBin = this.bin.path;
      details.serverBinSource = this.bin.source;
    }
    if (this.threads !== undefined) details.threads = Number(this.threads) || this.threads;
    if (props?.total_slots !== undefined) details.slots = props.total_slots;
    const nCtx = props?.default_generation_settings?.n_ctx;
    if (nCtx !== undefined) details.ctxPerSlot = nCtx;
    if (props?.model_ftype !== undefined) details.modelFtype = props.model_ftype;
    const chatFormat = props?.default_generation_settings?.params?.chat_format;
    if (chatFormat !== undefined) details.chatFormat = chatFormat;
    if (props?.chat_template !== undefined) details.hasChatTemplate = props.chat_template !== "";
    return {
      kind: this.kind,
      ...(props?.build_info !== undefined ? { build: props.build_info } : {}),
      serverFlags: [...this.recordedFlags],
      model: model satisfies ModelFingerprint,
      details,
    };
  }
}

export type LlamaServerTarget = Target & {
  /** The server's log file (exists once start() ran). */
  readonly logFile: string;
  /** The server's process id while it runs. */
  pid(): number | undefined;
};

export function createLlamaServerTarget(opts: LlamaServerTargetOptions): LlamaServerTarget {
  if (typeof opts.model !== "string" || opts.model === "") {
    throw new BadInputError("no model given", { subject: "model", hint: "--model ./models/my-model.Q4_K_M.gguf" });
  }
  return new LlamaServerTargetImpl(opts);
}
