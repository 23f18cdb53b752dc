import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { LOOPBACK } from "../port.js";
import { nodeLlamaCppBuild } from "./build-info.js";
import { type Engine, loadEngine } from "./engine.js";
import type { ServerConfig } from "./options.js";
import { type ChildToParent, type FailureKind, isParentMessage } from "./protocol.js";
import {
  BatchGate,
  CachingScheduler,
  ResponseCache,
  type Scheduler,
  SequencePool,
  SequenceScheduler,
} from "./scheduler.js";
import { createInProcessServer, type ServerState } from "./server.js";

/**
 * Entry of the forked model server (target.ts forks this file; the bundle ships it as dist/in-process-server.js).
 * It does nothing until the parent sends `start` over IPC, and it stops on SIGTERM/SIGINT or when the IPC channel
 * closes (the parent is gone), so it never outlives tokengate.
 */
let server: Server | undefined;
let engine: Engine | undefined;
let stopping = false;

/** Resolves once the message is handed to the IPC channel, so a `failed` sent just before exiting is not lost. */
function send(message: ChildToParent): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send?.(message, undefined, {}, () => resolve())) resolve();
  });
}

/** node-llama-cpp's errors for a file it cannot use as a model (vs. anything else, e.g. too little memory). */
function failureKind(err: unknown): FailureKind {
  const e = err as { name?: string; code?: string; message?: string };
  if (e.code === "ENOENT" || e.code === "EISDIR" || e.code === "EACCES") return "bad-model";
  if (/Gguf|GGUF/.test(e.name ?? "")) return "bad-model";
  if (/failed to load model|invalid gguf|gguf/i.test(e.message ?? "")) return "bad-model";
  return "could-not-run";
}

async function start(config: ServerConfig): Promise<void> {
  const state: ServerState = { model: undefined };
  server = createInProcessServer(state);
  const s = server;
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen({ host: LOOPBACK, port: 0 }, () => resolve());
  });
  await send({ type: "listening", port: (s.address() as AddressInfo).port });

  const started = performance.now();
  let scheduler: Scheduler | undefined;
  const gate = config.batching
    ? new BatchGate(config.batching, config.sequences, () => scheduler?.stats().active ?? 0)
    : undefined;
  // node-llama-cpp's own error says only "Failed to load model"; llama.cpp's log line says why.
  let loadError: string | undefined;
  const log = (line: string) => {
    process.stderr.write(`${line}\n`);
    loadError = /error loading model: (.*)$/.exec(line)?.[1] ?? loadError;
  };
  try {
    engine = await loadEngine(config, gate ? { gate, log } : { log });
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    await send({
      type: "failed",
      kind: failureKind(err),
      message: loadError !== undefined ? `${message} (llama.cpp: ${loadError})` : message,
    });
    await shutdown(1);
    return;
  }
  const e = engine;
  const base = new SequenceScheduler(new SequencePool(e.sequences), (seq, job, sink, signal) =>
    e.execute(seq, job, sink, signal),
  );
  scheduler = config.responseCache
    ? new CachingScheduler(base, new ResponseCache(config.responseCache.maxEntries))
    : base;
  const options = {
    threads: e.threads,
    contextSize: e.contextSize,
    batching: config.batching !== false,
    ...(config.batching
      ? { batchMaxSize: config.batching.maxBatchSize, batchMaxWaitMs: config.batching.maxWaitMs }
      : {}),
  };
  const sched = scheduler;
  state.model = {
    scheduler: sched,
    tokenize: (p) => e.tokenize(p),
    modelName: e.modelName,
    contextSize: e.contextSize,
    vocabSize: e.vocabSize,
    systemFingerprint: nodeLlamaCppBuild().label,
    describe: () => options,
  };
  await send({
    type: "ready",
    info: {
      modelName: e.modelName,
      contextSize: e.contextSize,
      threads: e.threads,
      vocabSize: e.vocabSize,
      loadMs: Math.round(performance.now() - started),
    },
  });
}

/** A dispose that hangs (a native call that does not return) must not keep the child alive: exit anyway. */
const SHUTDOWN_DEADLINE_MS = 3000;

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(code), SHUTDOWN_DEADLINE_MS).unref();
  server?.close();
  server?.closeAllConnections();
  await engine?.dispose();
  process.exit(code);
}

function main(): void {
  if (process.send === undefined) {
    process.stderr.write("tokengate's in-process server is started by tokengate (it talks to its parent over IPC)\n");
    process.exit(2);
  }
  process.on("message", (m: unknown) => {
    if (!isParentMessage(m) || server !== undefined) return;
    start(m.config).catch((err: unknown) => {
      process.stderr.write(`in-process server failed: ${(err as Error)?.stack ?? String(err)}\n`);
      void send({ type: "failed", kind: "could-not-run", message: (err as Error)?.message ?? String(err) }).then(() =>
        shutdown(1),
      );
    });
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => void shutdown(0));
  // The parent is gone (also by SIGKILL: the kernel closes its end of the IPC socket): so are we. This is the
  // in-process child's parent-death signal (fork() runs node itself; the IPC channel does what setpriv does).
  process.on("disconnect", () => void shutdown(0));
}

main();
