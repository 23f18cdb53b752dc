import { createHash, randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { mkdir, rename, rm, statfs } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { cacheDir } from "../util/cache-dir.js";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { FILE_TYPE_ID, GGML_TYPE_ID } from "./ggml-types.js";
import { type GgufKv, type GgufTensorSpec, kv, layoutGguf, writeGgufFile } from "./gguf-writer.js";
import type { ChunkJob } from "./kernel.js";
import {
  headDim,
  isModelType,
  isPresetName,
  llamaParams,
  llamaTensors,
  MODEL_TYPES,
  type ModelType,
  PRESET_NAMES,
  PRESETS,
  type Preset,
  type TensorPlan,
} from "./presets.js";
import { DEFAULT_VOCAB, isVocabName, loadVocab, VOCAB_NAMES, type Vocab, type VocabName } from "./vocab.js";
import { createChunkPool, createInlinePool, orderedMap } from "./worker-pool.js";

/**
 * `tokengate model synth`: a llama-architecture GGUF with seeded random weights and a real tokenizer, so benchmarks run
 * with no model download. Random weights cost the same compute and memory traffic per token as trained ones; the text
 * they produce is noise, which a performance test does not read.
 *
 * Determinism: every tensor is cut into chunks of CHUNK_ELEMENTS elements; chunk i of tensor T gets its own PRNG state,
 * sha256("tokengate-synth/v1", seed, T, i). The bytes therefore depend only on (preset, type, vocab, seed, format
 * version), never on the thread count or on which thread ran which chunk.
 */

/**
 * Bump when the bytes written for the same arguments change (kernel, layout, metadata). Part of the embedded default
 * model's file name, so a new writer regenerates it instead of reusing a stale file.
 */
export const SYNTH_FORMAT_VERSION = 1;

/** Elements per generated chunk: 4 Mi (a multiple of every block size; 2.4 MB of q4_0, 8 MB of f16). */
export const CHUNK_ELEMENTS = 1 << 22;

export const DEFAULT_SEED = 1;

export interface SynthOptions {
  /** tiny | small | medium | 7b (presets.ts). */
  preset: string;
  /** f16 | q8_0 | q4_0. Default: the preset's (tiny f16, small/medium q8_0, 7b q4_0). */
  type?: string;
  /** Tokenizer to copy (vocab.ts VOCAB_NAMES). Default llama-spm. */
  vocab?: string;
  /** 0 .. 2^32-1. Default 1. */
  seed?: number;
  /** Override the preset's layer count (e.g. 35 on the 7b preset: ~10% slower, for A/B validation). */
  layers?: number;
  /** Output file; parent folders are created. Written to a temporary file beside it, then renamed into place. */
  out: string;
  /** Generator threads. Default: all cores. 0 generates on the calling thread. The output does not depend on it. */
  threads?: number;
  /** Called as data is written. When absent, a progress bar/line on stderr unless `quiet`. */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
  quiet?: boolean;
}

export interface SynthResult {
  path: string;
  sha256: string;
  params: number;
  bytes: number;
  seconds: number;
}

interface ResolvedOptions {
  preset: Preset;
  type: ModelType;
  vocabName: VocabName;
  seed: number;
  out: string;
}

function resolveOptions(opts: SynthOptions): ResolvedOptions {
  if (!isPresetName(opts.preset)) {
    throw new BadInputError(`unknown preset "${opts.preset}"; valid: ${PRESET_NAMES.join(", ")}`, {
      subject: "--preset",
      hint: "--preset tiny (4M parameters, loads in a blink)",
    });
  }
  const base = PRESETS[opts.preset];
  let preset: Preset = base;
  if (opts.layers !== undefined) {
    if (!Number.isInteger(opts.layers) || opts.layers < 1 || opts.layers > 512) {
      throw new BadInputError(`must be an integer from 1 to 512, got ${opts.layers}`, {
        subject: "--layers",
        hint: `--layers ${base.layers + Math.max(1, Math.round(base.layers / 10))} (about 10% more compute than ${base.name})`,
      });
    }
    // Same shape with another depth: a controlled slowdown (A/B validation), named so it never passes for the preset.
    if (opts.layers !== base.layers) preset = { ...base, layers: opts.layers, name: `${opts.preset}-L${opts.layers}` };
  }
  const type = opts.type ?? preset.defaultType;
  if (!isModelType(type)) {
    throw new BadInputError(`unknown type "${type}"; valid: ${MODEL_TYPES.join(", ")}`, {
      subject: "--type",
      hint: `--type ${preset.defaultType} (the ${preset.name} preset's default); other quantizations: llama-quantize an f16 file`,
    });
  }
  const seed = opts.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new BadInputError(`must be an integer from 0 to 4294967295, got ${seed}`, {
      subject: "--seed",
      hint: "--seed 1",
    });
  }
  if (!opts.out) throw new BadInputError("an output file is required", { subject: "--out", hint: "--out model.gguf" });
  const out = resolve(opts.out);
  if (existsSync(out) && statSync(out).isDirectory()) {
    throw new BadInputError("is a directory; give a file name", {
      subject: "--out",
      hint: `--out ${join(opts.out, `${preset.name}.gguf`)}`,
    });
  }
  const vocabName = opts.vocab ?? DEFAULT_VOCAB;
  if (!isVocabName(vocabName)) {
    throw new BadInputError(`unknown vocabulary "${vocabName}"; valid: ${VOCAB_NAMES.join(", ")}`, {
      subject: "--vocab",
      hint: `--vocab ${DEFAULT_VOCAB} (Llama-2's SentencePiece tokenizer, the default)`,
    });
  }
  return { preset, type, vocabName, seed, out };
}

/** The PRNG state of one chunk: the first 16 bytes of a sha256 over (format, seed, tensor, chunk). */
export function chunkState(seed: number, tensorName: string, chunkIndex: number): [number, number, number, number] {
  const digest = createHash("sha256")
    .update(`tokengate-synth/v${SYNTH_FORMAT_VERSION}\0${seed}\0${tensorName}\0${chunkIndex}`)
    .digest();
  const state: [number, number, number, number] = [
    digest.readUInt32LE(0),
    digest.readUInt32LE(4),
    digest.readUInt32LE(8),
    digest.readUInt32LE(12),
  ];
  if (state.every((w) => w === 0)) state[0] = 1; // xoshiro's one forbidden state; never seen in practice
  return state;
}

export function modelName(preset: string, type: string): string {
  return `tokengate-synthetic-${preset}-${type}`;
}

/** The GGUF metadata of a synthetic llama model (key names from llama.cpp gguf-py `Keys`). */
export function synthMetadata(r: ResolvedOptions, vocab: Vocab): Record<string, GgufKv> {
  const p = r.preset;
  const md: Record<string, GgufKv> = {
    "general.architecture": kv.str("llama"),
    "general.type": kv.str("model"),
    "general.name": kv.str(modelName(p.name, r.type)),
    "general.file_type": kv.u32(FILE_TYPE_ID[r.type]),
  };
  if (r.type !== "f16") md["general.quantization_version"] = kv.u32(2);
  Object.assign(md, {
    "general.alignment": kv.u32(32),
    "llama.vocab_size": kv.u32(vocab.size),
    "llama.context_length": kv.u32(p.contextLength),
    "llama.embedding_length": kv.u32(p.embedding),
    "llama.block_count": kv.u32(p.layers),
    "llama.feed_forward_length": kv.u32(p.ff),
    "llama.rope.dimension_count": kv.u32(headDim(p)),
    "llama.rope.freq_base": kv.f32(p.ropeFreqBase),
    "llama.attention.head_count": kv.u32(p.heads),
    "llama.attention.head_count_kv": kv.u32(p.headsKv),
    "llama.attention.layer_norm_rms_epsilon": kv.f32(p.rmsEps),
    "tokengate.synthetic": kv.bool(true),
    "tokengate.preset": kv.str(p.name),
    "tokengate.seed": kv.u32(r.seed),
    "tokengate.vocab": kv.str(vocab.name),
    "tokengate.format_version": kv.u32(SYNTH_FORMAT_VERSION),
  });
  Object.assign(md, vocab.tokenizer);
  return md;
}

interface PlannedJob {
  tensor: TensorPlan;
  job: ChunkJob;
}

function chunkJobs(tensors: TensorPlan[], type: ModelType, seed: number): PlannedJob[] {
  const jobs: PlannedJob[] = [];
  for (const tensor of tensors) {
    const elements = tensor.shape.reduce((a, b) => a * b, 1);
    if (tensor.role === "norm") {
      // RMS norm weights are 1.0 (the usual init) and stay f32, as llama.cpp's converters keep 1-D tensors.
      jobs.push({ tensor, job: { fill: "ones", typeId: GGML_TYPE_ID.f32, elements, state: [1, 0, 0, 0] } });
      continue;
    }
    for (let i = 0, start = 0; start < elements; i++, start += CHUNK_ELEMENTS) {
      jobs.push({
        tensor,
        job: {
          fill: "normal",
          typeId: GGML_TYPE_ID[type],
          elements: Math.min(CHUNK_ELEMENTS, elements - start),
          state: chunkState(seed, tensor.name, i),
        },
      });
    }
  }
  return jobs;
}

async function* take<T>(it: AsyncIterator<T>, n: number): AsyncGenerator<T> {
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) throw new Error("weight generator ended early");
    yield r.value;
  }
}

export async function synthesizeModel(opts: SynthOptions): Promise<SynthResult> {
  const started = performance.now();
  const r = resolveOptions(opts);
  const vocab = await loadVocab(r.vocabName);
  const p = r.preset;
  const tensors = llamaTensors(p, vocab.size);
  const wType = GGML_TYPE_ID[r.type];
  for (const t of tensors) {
    // Defensive: every preset has rows that are whole blocks; a new preset might not.
    if (t.role === "matrix" && r.type !== "f16" && (t.shape[0] as number) % 32 !== 0) {
      throw new BadInputError(`${t.name} rows of ${t.shape[0]} do not split into 32-element ${r.type} blocks`, {
        subject: "--type",
        hint: "--type f16",
      });
    }
  }
  const metadata = synthMetadata(r, vocab);
  const jobs = chunkJobs(tensors, r.type, r.seed);
  const chunksPerTensor = new Map<string, number>();
  for (const j of jobs) chunksPerTensor.set(j.tensor.name, (chunksPerTensor.get(j.tensor.name) ?? 0) + 1);

  const specTensors = (data: (t: TensorPlan) => GgufTensorSpec["data"]): GgufTensorSpec[] =>
    tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      typeId: t.role === "norm" ? GGML_TYPE_ID.f32 : wType,
      data: data(t),
    }));
  const totalBytes = layoutGguf({ metadata, tensors: specTensors(() => []) }).totalBytes;

  await mkdir(dirname(r.out), { recursive: true });
  await checkFreeSpace(dirname(r.out), totalBytes);

  const threads = opts.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 0) {
    throw new BadInputError(`must be a non-negative integer, got ${threads}`, {
      subject: "--threads",
      hint: "--threads 4",
    });
  }
  const pool = threads === 0 ? createInlinePool() : createChunkPool(threads);
  const progress =
    opts.onProgress || opts.quiet
      ? undefined
      : createProgress({
          label: `writing ${modelName(p.name, r.type)}`,
          total: Math.ceil(totalBytes / 2 ** 20),
          unit: "MiB",
        });
  // Unique per writer: two processes may build the same cached model at once; identical bytes, the last rename wins.
  const tmp = `${r.out}.${process.pid}-${randomBytes(3).toString("hex")}.tmp`;
  try {
    const results = orderedMap(jobs, Math.max(4, 2 * Math.max(1, threads) + 2), (j) => pool.run(j.job))[
      Symbol.asyncIterator
    ]();
    const written = await writeGgufFile(tmp, {
      metadata,
      tensors: specTensors((t) => take(results, chunksPerTensor.get(t.name) ?? 0)),
      onProgress: (w, total) => {
        opts.onProgress?.(w, total);
        progress?.update(Math.floor(w / 2 ** 20));
      },
    });
    await rename(tmp, r.out);
    const seconds = (performance.now() - started) / 1000;
    progress?.done(`${(written.bytes / 2 ** 20).toFixed(1)} MiB in ${seconds.toFixed(1)} s`);
    return { path: r.out, sha256: written.sha256, params: llamaParams(p, vocab.size), bytes: written.bytes, seconds };
  } catch (err) {
    await rm(tmp, { force: true });
    if (
      err instanceof Error &&
      "code" in err &&
      (err.code === "ENOSPC" || err.code === "EACCES" || err.code === "EROFS")
    ) {
      throw new CouldNotRunError(`could not write the model: ${err.message}`, { subject: r.out, cause: err });
    }
    throw err;
  } finally {
    await pool.close();
  }
}

async function checkFreeSpace(dir: string, bytes: number): Promise<void> {
  let free: number;
  try {
    const s = await statfs(dir);
    free = s.bavail * s.bsize;
  } catch {
    return; // not knowable here (some filesystems); the write itself will say ENOSPC
  }
  if (free < bytes + 64 * 2 ** 20) {
    throw new CouldNotRunError(
      `not enough disk space: the model needs ${(bytes / 2 ** 30).toFixed(2)} GiB, ${(free / 2 ** 30).toFixed(2)} GiB are free`,
      { subject: dir, hint: "free some space, or write a smaller model: --preset small" },
    );
  }
}

function cachedModelPath(preset: string, type: string, vocab: string, seed: number): string {
  return cacheDir("models", `${modelName(preset, type)}-${vocab}-s${seed}-v${SYNTH_FORMAT_VERSION}.gguf`);
}

/** The embedded default model's file (tiny, f16, llama-spm, seed 1). The format version is in the name. */
export function defaultModelPath(): string {
  return cachedModelPath("tiny", "f16", DEFAULT_VOCAB, DEFAULT_SEED);
}

/**
 * The model `tokengate run` uses when none is given: tiny f16 with the llama-spm tokenizer, synthesized once into the
 * cache and reused. Safe to call from several processes at once.
 */
export async function ensureDefaultModel(opts: { quiet?: boolean } = {}): Promise<string> {
  return ensureCachedModel({ preset: "tiny", quiet: opts.quiet ?? true });
}

/** A synthetic model cached under `<cache>/models/`, named by every argument that changes its bytes. */
export async function ensureCachedModel(opts: Omit<SynthOptions, "out" | "onProgress">): Promise<string> {
  const r = resolveOptions({ ...opts, out: "unused.gguf" });
  const path = cachedModelPath(r.preset.name, r.type, r.vocabName, r.seed);
  if (existsSync(path)) return path;
  await synthesizeModel({ ...opts, out: path });
  return path;
}
