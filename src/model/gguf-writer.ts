import { createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import { GGML_TYPES, tensorBytes } from "./ggml-types.js";

/**
 * A streaming GGUF v3 writer (format: llama.cpp `ggml/include/gguf.h`, gguf-py `gguf_writer.py`).
 *
 * File layout: magic "GGUF", u32 version, u64 tensor count, u64 KV count, the KV pairs, the tensor infos (name, dims
 * with ne0 first, ggml type, offset relative to the data section), zero padding to `general.alignment`, then each
 * tensor's bytes, each padded to the alignment. Little-endian throughout.
 *
 * The header is built in memory (it is small: the llama-spm tokenizer is ~1 MB of it); tensor data is pulled from
 * async iterables chunk by chunk and written with backpressure, so a 3.5 GiB model never sits in memory.
 */

/** GGUF value type ids (same numbers as @huggingface/gguf's `GGUFValueType`). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufTypeId = (typeof GgufType)[keyof typeof GgufType];

export type GgufScalar = number | bigint | boolean | string;

/**
 * One metadata value with its GGUF type; arrays name their element type in `subType`. The same shape as the entries of
 * @huggingface/gguf's `typedMetadata`, so metadata read from one file can be written into another unchanged.
 */
export interface GgufKv {
  type: number;
  value: GgufScalar | readonly GgufScalar[];
  subType?: number;
}

export interface GgufTensorSpec {
  name: string;
  /** Dimensions, ne0 (the contiguous one) first, as GGUF stores them. */
  shape: readonly number[];
  /** ggml type id (ggml-types.ts). */
  typeId: number;
  /** The tensor's bytes in order, in chunks of any size; their total must equal the tensor's size. */
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

export interface GgufWriteSpec {
  /** Written in insertion order. `general.alignment` (u32) is honoured when present; 32 otherwise. */
  metadata: Record<string, GgufKv>;
  tensors: readonly GgufTensorSpec[];
  /** Called after each chunk of tensor data is written (bytes written so far, total bytes). */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

export interface GgufLayout {
  header: Buffer;
  alignment: number;
  /** Offset of each tensor relative to the start of the data section. */
  tensorOffsets: bigint[];
  tensorSizes: number[];
  /** Whole file size. */
  totalBytes: number;
}

export interface GgufWriteResult {
  bytes: number;
  sha256: string;
}

export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Appends little-endian values to a list of buffers. */
class ByteSink {
  readonly parts: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u8(v: number): void {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(v);
    this.push(b);
  }
  u32(v: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: bigint | number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
}

function fail(key: string, message: string): never {
  throw new TypeError(`GGUF metadata ${key}: ${message}`);
}

function writeScalar(out: ByteSink, key: string, type: number, value: GgufScalar): void {
  const num = (): number => {
    if (typeof value !== "number" || !Number.isFinite(value)) fail(key, `expected a number, got ${String(value)}`);
    return value;
  };
  const int = (min: number, max: number): number => {
    const v = num();
    if (!Number.isInteger(v) || v < min || v > max) fail(key, `${v} is not an integer in [${min}, ${max}]`);
    return v;
  };
  const big = (): bigint => {
    if (typeof value === "bigint") return value;
    if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
    return fail(key, `expected an integer, got ${String(value)}`);
  };
  let b: Buffer;
  switch (type) {
    case GgufType.UINT8:
      b = Buffer.alloc(1);
      b.writeUInt8(int(0, 0xff));
      break;
    case GgufType.INT8:
      b = Buffer.alloc(1);
      b.writeInt8(int(-0x80, 0x7f));
      break;
    case GgufType.UINT16:
      b = Buffer.alloc(2);
      b.writeUInt16LE(int(0, 0xffff));
      break;
    case GgufType.INT16:
      b = Buffer.alloc(2);
      b.writeInt16LE(int(-0x8000, 0x7fff));
      break;
    case GgufType.UINT32:
      b = Buffer.alloc(4);
      b.writeUInt32LE(int(0, 0xffffffff));
      break;
    case GgufType.INT32:
      b = Buffer.alloc(4);
      b.writeInt32LE(int(-0x80000000, 0x7fffffff));
      break;
    case GgufType.FLOAT32:
      b = Buffer.alloc(4);
      b.writeFloatLE(num());
      break;
    case GgufType.FLOAT64:
      b = Buffer.alloc(8);
      b.writeDoubleLE(num());
      break;
    case GgufType.UINT64:
      b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt.asUintN(64, big()));
      break;
    case GgufType.INT64:
      b = Buffer.alloc(8);
      b.writeBigInt64LE(BigInt.asIntN(64, big()));
      break;
    case GgufType.BOOL:
      if (typeof value !== "boolean") fail(key, `expected a boolean, got ${String(value)}`);
      b = Buffer.from([value ? 1 : 0]);
      break;
    case GgufType.STRING:
      if (typeof value !== "string") fail(key, `expected a string, got ${String(value)}`);
      out.string(value);
      return;
    default:
      fail(key, `unsupported value type ${type}`);
  }
  out.push(b);
}

/** Fast paths for the big tokenizer arrays (tens of thousands of entries). */
function writeNumericArray(out: ByteSink, key: string, subType: number, values: readonly GgufScalar[]): boolean {
  const n = values.length;
  let b: Buffer;
  switch (subType) {
    case GgufType.INT32:
      b = Buffer.alloc(4 * n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== "number" || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
          fail(`${key}[${i}]`, `${String(v)} is not an int32`);
        b.writeInt32LE(v, 4 * i);
      }
      break;
    case GgufType.UINT32:
      b = Buffer.alloc(4 * n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
          fail(`${key}[${i}]`, `${String(v)} is not a uint32`);
        b.writeUInt32LE(v, 4 * i);
      }
      break;
    case GgufType.FLOAT32:
      b = Buffer.alloc(4 * n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== "number") fail(`${key}[${i}]`, `${String(v)} is not a number`);
        b.writeFloatLE(v, 4 * i);
      }
      break;
    default:
      return false;
  }
  out.push(b);
  return true;
}

function writeValue(out: ByteSink, key: string, kv: GgufKv): void {
  out.u32(kv.type);
  if (kv.type !== GgufType.ARRAY) {
    if (Array.isArray(kv.value)) fail(key, `type ${kv.type} is not an array type, but the value is an array`);
    writeScalar(out, key, kv.type, kv.value as GgufScalar);
    return;
  }
  if (!Array.isArray(kv.value)) fail(key, "an ARRAY value must be an array");
  const values = kv.value as readonly GgufScalar[];
  const subType = kv.subType;
  if (subType === undefined || subType === GgufType.ARRAY)
    fail(key, "arrays need a scalar subType (nested arrays are not supported)");
  out.u32(subType);
  out.u64(values.length);
  if (writeNumericArray(out, key, subType, values)) return;
  for (let i = 0; i < values.length; i++) writeScalar(out, `${key}[${i}]`, subType, values[i] as GgufScalar);
}

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Computes the header bytes and where every tensor goes. Pure: nothing is written. */
export function layoutGguf(spec: Pick<GgufWriteSpec, "metadata" | "tensors">): GgufLayout {
  const alignKv = spec.metadata["general.alignment"];
  const alignment = alignKv === undefined ? GGUF_DEFAULT_ALIGNMENT : Number(alignKv.value);
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    throw new TypeError(`GGUF metadata general.alignment: ${String(alignKv?.value)} must be a positive multiple of 8`);
  }
  const names = new Set<string>();
  const out = new ByteSink();
  out.push(Buffer.from("GGUF", "latin1"));
  out.u32(3);
  out.u64(spec.tensors.length);
  const entries = Object.entries(spec.metadata);
  out.u64(entries.length);
  for (const [key, kv] of entries) {
    out.string(key);
    writeValue(out, key, kv);
  }
  const tensorOffsets: bigint[] = [];
  const tensorSizes: number[] = [];
  let dataBytes = 0;
  for (const t of spec.tensors) {
    if (names.has(t.name)) throw new TypeError(`GGUF tensor ${t.name}: duplicate name`);
    names.add(t.name);
    if (!GGML_TYPES[t.typeId]) throw new TypeError(`GGUF tensor ${t.name}: unknown ggml type ${t.typeId}`);
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      throw new TypeError(`GGUF tensor ${t.name}: shape [${t.shape.join(", ")}] must have 1-4 positive dimensions`);
    }
    const blockSize = (GGML_TYPES[t.typeId] as { blockSize: number }).blockSize;
    if ((t.shape[0] as number) % blockSize !== 0) {
      throw new TypeError(
        `GGUF tensor ${t.name}: rows of ${t.shape[0]} elements are not whole ${GGML_TYPES[t.typeId]?.name} blocks of ${blockSize}`,
      );
    }
    const elements = t.shape.reduce((a, b) => a * b, 1);
    const size = tensorBytes(t.typeId, elements) as number;
    out.string(t.name);
    out.u32(t.shape.length);
    for (const d of t.shape) out.u64(d);
    out.u32(t.typeId);
    out.u64(dataBytes);
    tensorOffsets.push(BigInt(dataBytes));
    tensorSizes.push(size);
    dataBytes = padTo(dataBytes + size, alignment);
  }
  const headerLength = padTo(out.length, alignment);
  out.push(Buffer.alloc(headerLength - out.length));
  const header = Buffer.concat(out.parts, headerLength);
  return { header, alignment, tensorOffsets, tensorSizes, totalBytes: headerLength + dataBytes };
}

/**
 * Writes a GGUF file to `sink`, awaiting 'drain' whenever the sink's buffer is full (backpressure), and hashes what it
 * writes. Does not end the sink. Rejects if a tensor's data is not exactly its size.
 */
export async function writeGguf(sink: Writable, spec: GgufWriteSpec): Promise<GgufWriteResult> {
  const layout = layoutGguf(spec);
  const hash = createHash("sha256");
  let written = 0;
  let sinkError: Error | undefined;
  const onError = (err: Error): void => {
    sinkError ??= err;
  };
  sink.on("error", onError);
  const put = async (chunk: Uint8Array): Promise<void> => {
    if (sinkError) throw sinkError;
    hash.update(chunk);
    written += chunk.length;
    if (!sink.write(chunk)) {
      await waitForDrain(sink);
      if (sinkError) throw sinkError;
    }
  };
  try {
    await put(layout.header);
    for (const [i, t] of spec.tensors.entries()) {
      const size = layout.tensorSizes[i] as number;
      let got = 0;
      for await (const chunk of t.data) {
        got += chunk.length;
        if (got > size) throw new Error(`GGUF tensor ${t.name}: data is longer than its ${size} bytes`);
        await put(chunk);
        spec.onProgress?.(written, layout.totalBytes);
      }
      if (got !== size) throw new Error(`GGUF tensor ${t.name}: got ${got} bytes of data, expected ${size}`);
      const padded = padTo(size, layout.alignment);
      if (padded > size) await put(new Uint8Array(padded - size));
    }
  } finally {
    sink.off("error", onError);
  }
  if (written !== layout.totalBytes)
    throw new Error(`GGUF writer: wrote ${written} bytes, laid out ${layout.totalBytes}`);
  return { bytes: written, sha256: hash.digest("hex") };
}

/** Resolves on 'drain'; rejects on 'error', so a failed disk never leaves us waiting for a drain that never comes. */
function waitForDrain(sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      sink.off("error", onError);
      resolve();
    };
    const onError = (err: Error): void => {
      sink.off("drain", onDrain);
      reject(err);
    };
    sink.once("drain", onDrain);
    sink.once("error", onError);
  });
}

/** Writes a GGUF file at `path` (created or truncated) and waits until it is closed. */
export async function writeGgufFile(path: string, spec: GgufWriteSpec): Promise<GgufWriteResult> {
  const stream = createWriteStream(path, { highWaterMark: 8 * 1024 * 1024 });
  const closed = once(stream, "close");
  let result: GgufWriteResult;
  try {
    result = await writeGguf(stream, spec);
  } catch (err) {
    stream.destroy();
    await closed.catch(() => {});
    throw err;
  }
  stream.end();
  await closed;
  return result;
}

/** Metadata helpers, so callers read as `u32(4096)` rather than `{ type: 4, value: 4096 }`. */
export const kv = {
  u32: (value: number): GgufKv => ({ type: GgufType.UINT32, value }),
  i32: (value: number): GgufKv => ({ type: GgufType.INT32, value }),
  u64: (value: bigint | number): GgufKv => ({ type: GgufType.UINT64, value }),
  f32: (value: number): GgufKv => ({ type: GgufType.FLOAT32, value }),
  bool: (value: boolean): GgufKv => ({ type: GgufType.BOOL, value }),
  str: (value: string): GgufKv => ({ type: GgufType.STRING, value }),
  arr: (subType: number, value: readonly GgufScalar[]): GgufKv => ({ type: GgufType.ARRAY, subType, value }),
};
