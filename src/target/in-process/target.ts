import { type ChildProcess, fork } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inspectModel, type ModelInfo } from "../../model/inspect.js";
import { registerChild, stopChild } from "../../util/children.js";
import { BadInputError, CouldNotRunError } from "../../util/errors.js";
import { packageInfo } from "../../util/package-root.js";
import { ChildServerTarget } from "../child-server-target.js";
import { probeLlamaHealth } from "../health.js";
import { logTail } from "../llama-server.js";
import { LOOPBACK } from "../port.js";
import type { Endpoint, ModelFingerprint, Target, TargetFingerprint } from "../types.js";
import { nodeLlamaCppBuild } from "./build-info.js";
import { type InProcessTargetOptions, resolveServerConfig, type ServerConfig } from "./options.js";
import { type ChildToParent, isChildMessage, type ParentToChild, type ReadyInfo } from "./protocol.js";

export type { InProcessTargetOptions } from "./options.js";

/**
 * The in-process target: node-llama-cpp loads the GGUF in a forked child process (child.ts) that serves it over a
 * small OpenAI-compatible HTTP endpoint on 127.0.0.1. A child, not this process: the model's JavaScript work (sampling
 * callbacks, detokenizing, SSE writing) must not share the event loop with the load generator that measures it.
 */

/**
 * The child's entry file, resolved relative to this module so it works wherever tokengate runs from:
 * 1. `in-process-server.js` beside this code or one folder up: the rollup bundle (`dist/in-process-server.js`; this
 *    code lands in `dist/*.js` or in a shared chunk under `dist/chunks/`);
 * 2. `child.js` beside this file: a tsc build (`lib/target/in-process/`);
 * 3. `child.ts` beside this file: the TypeScript sources, run by vitest or tsx;
 * 4. `<package>/dist/in-process-server.js`: the bundle, found from tokengate's package.json.
 * The first that exists wins, so sources never pick up a stale bundle and the bundle never needs the sources.
 */
export function childEntry(moduleUrl: string = import.meta.url): string {
  const candidates = [
    new URL("./in-process-server.js", moduleUrl),
    new URL("../in-process-server.js", moduleUrl),
    new URL("./child.js", moduleUrl),
    new URL("./child.ts", moduleUrl),
  ].map((u) => fileURLToPath(u));
  try {
    candidates.push(join(packageInfo().root, "dist", "in-process-server.js"));
  } catch {
    // not inside tokengate's package folder: only the candidates beside this module apply
  }
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) {
    throw new CouldNotRunError("the in-process server's entry file was not found", {
      subject: candidates[0],
      hint: "reinstall tokengate, or rebuild the bundle (it must contain dist/in-process-server.js)",
    });
  }
  return found;
}

/** True when execArgv already loads tsx (running under `tsx`, which puts its loader there). */
function hasTsxLoader(execArgv: readonly string[]): boolean {
  return execArgv.some((a) => /[\\/]tsx[\\/]|^tsx$|tsx\/esm|tsx\/dist/.test(a));
}

/** tsx's ESM loader as a file URL (resolved from this module, so the child's working folder does not matter). */
function tsxLoaderUrl(): string {
  try {
    return import.meta.resolve("tsx");
  } catch {
    return pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
  }
}

/**
 * Node flags for the child. fork() passes the parent's `process.execArgv` by default; we start from it so flags the
 * user gave node (memory limits, `--import` hooks, tsx's loader when running under `tsx`) reach the child too, minus
 * debugger flags (a second process on the same inspector port fails to start). Node 20 cannot run TypeScript: a `.ts`
 * entry (sources under vitest, whose workers carry no loader in execArgv) gets `--import <tsx>` added.
 */
export function childExecArgv(entry: string, execArgv: readonly string[] = process.execArgv): string[] {
  const args = execArgv.filter((a) => !/^--(inspect|debug)/.test(a));
  if (entry.endsWith(".ts") && !hasTsxLoader(args)) args.push("--import", tsxLoaderUrl());
  return args;
}

function formatTail(file: string, n = 20): string {
  const tail = logTail(file, n);
  return tail.length === 0
    ? `(the log ${file} is empty)`
    : `last lines of ${file}:\n${tail.map((l) => `  | ${l}`).join("\n")}`;
}

function seconds(ms: number): string {
  return ms < 10_000 ? String(Math.round(ms / 100) / 10) : String(Math.round(ms / 1000));
}

const HINT_MODEL =
  "give a complete GGUF model file, e.g. --model ./models/model.Q4_K_M.gguf, or write one: tokengate model synth --preset tiny --out model.gguf";

class InProcessTargetImpl extends ChildServerTarget {
  readonly kind = "in-process" as const;
  readonly logFile: string;
  private readonly config: ServerConfig;
  private model: ModelInfo | undefined;
  private ready: ReadyInfo | undefined;

  constructor(private readonly opts: InProcessTargetOptions) {
    super("the in-process target was stopped", opts.stopGraceMs ?? 5000);
    this.config = resolveServerConfig(opts);
    this.logFile = resolve(opts.logFile ?? join(mkdtempSync(join(tmpdir(), "tokengate-in-process-")), "server.log"));
  }

  protected async doStart(outerSignal?: AbortSignal): Promise<Endpoint> {
    const signal = outerSignal ? AbortSignal.any([outerSignal, this.lifetime.signal]) : this.lifetime.signal;
    signal.throwIfAborted();
    const modelPath = this.config.modelPath;
    // Reading the GGUF (and hashing it) runs while the child loads the model; its BadInputError for a broken file
    // names the problem better than node-llama-cpp does, so it wins when both fail.
    const inspected = inspectModel(modelPath);
    inspected.catch(() => {});
    const entry = childEntry();

    mkdirSync(dirname(this.logFile), { recursive: true });
    const fd = openSync(this.logFile, "w");
    let child: ChildProcess;
    try {
      writeSync(fd, `# tokengate: in-process server ${entry} ${JSON.stringify(this.config)}\n`);
      // The child writes straight into the log file (no pipe through this process), like llama-server.
      child = fork(entry, [], {
        execArgv: childExecArgv(entry),
        stdio: ["ignore", fd, fd, "ipc"],
        serialization: "json",
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    if (child.pid !== undefined) registerChild(child);
    child.once("exit", () => {
      this.exited = true;
    });

    // A file inspectModel rejects is not worth waiting for the child over: stop waiting at once.
    const inspectFailed = new AbortController();
    inspected.catch((err: unknown) => inspectFailed.abort(err));
    try {
      const port = await this.waitReady(child, AbortSignal.any([signal, inspectFailed.signal]));
      const model = await inspected;
      this.model = model;
      const baseUrl = `http://${LOOPBACK}:${port}`;
      // One request over HTTP proves the endpoint the load generator will use, not just the IPC channel.
      const health = await probeLlamaHealth(baseUrl, { signal });
      if (!health.ready) {
        throw new CouldNotRunError(`the in-process server said ready but /health answered ${health.detail}`, {
          subject: baseUrl,
        });
      }
      this.endpoint = {
        baseUrl,
        apis: ["openai-completions", "openai-chat"],
        modelName: this.ready?.modelName ?? model.path,
        bannedTokenIds: model.bannedTokenIds,
        logFile: this.logFile,
      };
      return this.endpoint;
    } catch (err) {
      if (!this.exited) await stopChild(child, this.opts.stopGraceMs ?? 5000);
      const inspectErr = await inspected.then(
        () => undefined,
        (e: unknown) => e,
      );
      if (inspectErr instanceof BadInputError) throw inspectErr;
      if (signal.aborted && !(err instanceof CouldNotRunError || err instanceof BadInputError)) {
        throw new CouldNotRunError("the in-process server start was cancelled", { subject: modelPath, cause: err });
      }
      throw err;
    }
  }

  /** Resolves with the port once the child has loaded the model; rejects on failure, exit, deadline or abort. */
  private waitReady(child: ChildProcess, signal: AbortSignal): Promise<number> {
    const timeoutMs = this.opts.startTimeoutMs ?? 120_000;
    const modelPath = this.config.modelPath;
    return new Promise<number>((resolvePort, reject) => {
      let port: number | undefined;
      const cleanup = () => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        child.off("error", onError);
        signal.removeEventListener("abort", onAbort);
      };
      const fail = (err: unknown) => {
        cleanup();
        reject(err);
      };
      const onMessage = (m: unknown) => {
        if (!isChildMessage(m)) return;
        const msg: ChildToParent = m;
        if (msg.type === "listening") port = msg.port;
        else if (msg.type === "ready") {
          this.ready = msg.info;
          cleanup();
          if (port === undefined) reject(new CouldNotRunError("the in-process server never said which port it uses"));
          else resolvePort(port);
        } else if (msg.kind === "bad-model") {
          fail(
            new BadInputError(`node-llama-cpp cannot load this model: ${msg.message}`, {
              subject: modelPath,
              hint: HINT_MODEL,
            }),
          );
        } else {
          fail(
            new CouldNotRunError(
              `the in-process server could not load the model: ${msg.message}; ${formatTail(this.logFile)}`,
              {
                subject: modelPath,
                hint: "the log above says why (too little memory, a context size the model cannot take); fix that and run again",
              },
            ),
          );
        }
      };
      const onExit = (code: number | null, sig: NodeJS.Signals | null) => {
        const how = sig ? `was killed by ${sig}` : `exited with code ${code}`;
        fail(
          new CouldNotRunError(`the in-process server ${how} while loading the model; ${formatTail(this.logFile)}`, {
            subject: modelPath,
            hint: "the log above says why; a crash while loading often means too little memory for the model and context",
          }),
        );
      };
      const onError = (err: Error) =>
        fail(
          new CouldNotRunError(`could not start the in-process server: ${err.message}`, {
            subject: modelPath,
            cause: err,
          }),
        );
      const onAbort = () => fail(signal.reason);
      const timer = setTimeout(
        () =>
          fail(
            new CouldNotRunError(
              `the in-process server did not load the model within ${seconds(timeoutMs)} s; it was stopped; ${formatTail(this.logFile)}`,
              { subject: modelPath, hint: "a large model on a slow disk can need longer: raise the start timeout" },
            ),
          ),
        timeoutMs,
      );
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.once("error", onError);
      signal.addEventListener("abort", onAbort, { once: true });
      const start: ParentToChild = { type: "start", config: this.config };
      child.send(start, (err) => {
        if (err) fail(new CouldNotRunError(`could not talk to the in-process server: ${err.message}`, { cause: err }));
      });
    });
  }

  async fingerprint(): Promise<TargetFingerprint> {
    this.model ??= await inspectModel(this.config.modelPath);
    const { bannedTokenIds: _banned, ...model } = this.model;
    const build = nodeLlamaCppBuild();
    const c = this.config;
    const details: Record<string, string | number | boolean> = {
      threads: this.ready?.threads ?? c.threads,
      sequences: c.sequences,
      contextSize: this.ready?.contextSize ?? c.contextSize,
      batching: c.batching !== false,
      responseCache: c.responseCache !== false,
      nodeLlamaCpp: build.version,
      llamaCppTag: build.llamaCppTag,
      backend: "cpu",
    };
    if (c.batching) {
      details.batchMaxSize = c.batching.maxBatchSize;
      details.batchMaxWaitMs = c.batching.maxWaitMs;
    }
    if (c.responseCache) details.responseCacheEntries = c.responseCache.maxEntries;
    return { kind: this.kind, build: build.label, serverFlags: [], model: model satisfies ModelFingerprint, details };
  }
}

export type InProcessTarget = Target & {
  /** The server's log file (exists once start() ran). */
  readonly logFile: string;
  /** The server's process id while it runs. */
  pid(): number | undefined;
};

/** Throws BadInputError at once for invalid options (threads, sequences, ...); the model is checked by start(). */
export function createInProcessTarget(opts: InProcessTargetOptions): InProcessTarget {
  return new InProcessTargetImpl(opts);
}
