import { Worker } from "node:worker_threads";
import { type ChunkJob, createKernel, type Kernel } from "./kernel.js";

/**
 * A fixed set of worker threads that each run the kernel (kernel.ts) on one chunk at a time.
 *
 * The workers are started from source text (`eval: true`) built from `createKernel.toString()`, so no separate worker
 * file has to exist next to the bundled action or the vitest-transformed sources. Each chunk carries its own PRNG
 * state, so the bytes do not depend on which worker ran it or how many there are.
 */
export interface ChunkPool {
  run(job: ChunkJob): Promise<Uint8Array>;
  readonly threads: number;
  close(): Promise<void>;
}

// esbuild (vitest, tsx) may wrap named functions in `__name(...)` when it keeps names; the worker has no such helper,
// so the source defines a harmless one.
const WORKER_SOURCE = `
"use strict";
var __name = (f) => f;
const { parentPort } = require("node:worker_threads");
const kernel = (${createKernel.toString()})();
parentPort.on("message", (msg) => {
  try {
    const bytes = kernel.generateChunk(msg.job);
    parentPort.postMessage({ id: msg.id, bytes }, [bytes.buffer]);
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String(err && err.stack || err) });
  }
});
`;

interface Pending {
  job: ChunkJob;
  resolve: (bytes: Uint8Array) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  busy?: { id: number; pending: Pending };
}

/** Runs jobs in `threads` workers (1 or more). */
export function createChunkPool(threads: number): ChunkPool {
  const slots: Slot[] = [];
  const queue: Pending[] = [];
  let nextId = 0;
  let closed = false;
  let failure: Error | undefined;

  const dispatch = (): void => {
    for (const slot of slots) {
      if (slot.busy) continue;
      const pending = queue.shift();
      if (!pending) return;
      const id = nextId++;
      slot.busy = { id, pending };
      slot.worker.postMessage({ id, job: pending.job });
    }
  };

  const fail = (err: Error): void => {
    failure ??= err;
    for (const slot of slots) {
      slot.busy?.pending.reject(err);
      slot.busy = undefined;
    }
    for (const p of queue.splice(0)) p.reject(err);
  };

  for (let i = 0; i < threads; i++) {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    const slot: Slot = { worker };
    worker.on("message", (msg: { id: number; bytes?: Uint8Array; error?: string }) => {
      const busy = slot.busy;
      slot.busy = undefined;
      if (!busy || busy.id !== msg.id) return;
      if (msg.error !== undefined || !msg.bytes)
        busy.pending.reject(new Error(`weight generator failed: ${msg.error}`));
      else busy.pending.resolve(msg.bytes);
      dispatch();
    });
    worker.on("error", (err) => fail(err));
    worker.on("exit", (code) => {
      if (!closed) fail(new Error(`weight generator thread exited with code ${code}`));
    });
    slots.push(slot);
  }

  return {
    threads,
    run(job) {
      if (failure) return Promise.reject(failure);
      if (closed) return Promise.reject(new Error("chunk pool is closed"));
      return new Promise((resolve, reject) => {
        queue.push({ job, resolve, reject });
        dispatch();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      fail(new Error("chunk pool closed"));
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

/** Runs jobs on the calling thread: for tiny tensors and for tests that compare against the workers. */
export function createInlinePool(): ChunkPool {
  let kernel: Kernel | undefined;
  return {
    threads: 0,
    async run(job) {
      kernel ??= createKernel();
      return kernel.generateChunk(job);
    },
    async close() {},
  };
}

/**
 * Maps `jobs` through `run` with at most `window` in flight, yielding results in job order (the file must be written
 * in order; later chunks are computed while earlier ones are written). Rejections of chunks never awaited (the consumer
 * stopped early) are swallowed so they do not surface as unhandled.
 */
export async function* orderedMap<J, R>(
  jobs: Iterable<J>,
  window: number,
  run: (job: J) => Promise<R>,
): AsyncGenerator<R> {
  const inFlight: Promise<R>[] = [];
  const it = jobs[Symbol.iterator]();
  let exhausted = false;
  const topUp = (): void => {
    while (!exhausted && inFlight.length < window) {
      const next = it.next();
      if (next.done) {
        exhausted = true;
        return;
      }
      const p = run(next.value);
      p.catch(() => {});
      inFlight.push(p);
    }
  };
  topUp();
  while (inFlight.length > 0) {
    const head = inFlight.shift() as Promise<R>;
    topUp();
    yield await head;
  }
}
