import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { GGUFValueType, gguf } from "@huggingface/gguf";
import { afterAll, describe, expect, it } from "vitest";
import { GGML_TYPE_ID } from "../../src/model/ggml-types.js";
import {
  type GgufTensorSpec,
  GgufType,
  kv,
  layoutGguf,
  writeGguf,
  writeGgufFile,
} from "../../src/model/gguf-writer.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-gguf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic bytes: tensor i's byte j is (i * 31 + j) & 0xff. */
function pattern(i: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j) & 0xff;
  return b;
}

/** Yields `bytes` in pieces of `piece` bytes, to exercise chunked tensor data. */
function* pieces(bytes: Uint8Array, piece: number): Generator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += piece) yield bytes.subarray(o, o + piece);
}

const allTypes = {
  "t.u8": { type: GgufType.UINT8, value: 255 },
  "t.i8": { type: GgufType.INT8, value: -128 },
  "t.u16": { type: GgufType.UINT16, value: 65535 },
  "t.i16": { type: GgufType.INT16, value: -32768 },
  "t.u32": kv.u32(4294967295),
  "t.i32": kv.i32(-2147483648),
  "t.f32": kv.f32(0.25),
  "t.bool": kv.bool(true),
  "t.string": kv.str("héllo ✓ {{ jinja }}"),
  "t.u64": kv.u64(2n ** 64n - 1n),
  "t.i64": { type: GgufType.INT64, value: -(2n ** 63n) },
  "t.f64": { type: GgufType.FLOAT64, value: Math.PI },
  "t.arr.str": kv.arr(GgufType.STRING, ["<unk>", "", "▁the", "<0x0A>"]),
  "t.arr.i32": kv.arr(GgufType.INT32, [2, 3, 3, 6, -1]),
  "t.arr.u32": kv.arr(GgufType.UINT32, [0, 4294967295]),
  "t.arr.f32": kv.arr(GgufType.FLOAT32, [0, -1.5, 1e-5]),
  "t.arr.u8": kv.arr(GgufType.UINT8, [1, 2, 255]),
  "t.arr.bool": kv.arr(GgufType.BOOL, [true, false]),
  "t.arr.empty": kv.arr(GgufType.INT32, []),
};

// Shapes chosen so sizes are not multiples of the alignment: padding must be inserted between tensors.
const tensorDefs = [
  { name: "a.f32", shape: [3], typeId: GGML_TYPE_ID.f32, size: 12 },
  { name: "b.f16", shape: [5, 3], typeId: GGML_TYPE_ID.f16, size: 30 },
  { name: "c.q8_0", shape: [64, 2], typeId: GGML_TYPE_ID.q8_0, size: 4 * 34 },
  { name: "d.q4_0", shape: [32, 3], typeId: GGML_TYPE_ID.q4_0, size: 3 * 18 },
];

function tensors(piece = 7): GgufTensorSpec[] {
  return tensorDefs.map((t, i) => ({
    name: t.name,
    shape: t.shape,
    typeId: t.typeId,
    data: pieces(pattern(i, t.size), piece),
  }));
}

describe("GGUF writer", () => {
  for (const alignment of [32, 64]) {
    it(`round-trips metadata of every value type and tensor infos through @huggingface/gguf (alignment ${alignment})`, async () => {
      const file = join(dir, `all-${alignment}.gguf`);
      const metadata = { "general.architecture": kv.str("llama"), "general.alignment": kv.u32(alignment), ...allTypes };
      const written = await writeGgufFile(file, { metadata, tensors: tensors() });
      const bytes = readFileSync(file);
      expect(written.bytes).toBe(bytes.length);

      const parsed = await gguf(file, { allowLocalFile: true, typedMetadata: true });
      const md = parsed.typedMetadata as Record<string, { value: unknown; type: number; subType?: number }>;
      expect(parsed.metadata.version).toBe(3);
      expect(Number(parsed.metadata.kv_count)).toBe(Object.keys(metadata).length);
      for (const [key, want] of Object.entries(metadata)) {
        const got = md[key];
        expect(got?.type, key).toBe(want.type);
        if (want.type === GgufType.ARRAY) expect(got?.subType, key).toBe((want as { subType: number }).subType);
        // float32 values come back as the nearest float32 (checked below); the rest exactly.
        if (want.type === GgufType.FLOAT32) expect(got?.value).toBe(Math.fround(want.value as number));
        else if (key !== "t.arr.f32") expect(got?.value, key).toEqual(want.value);
      }
      expect(md["t.arr.f32"]?.value).toEqual([0, -1.5, Math.fround(1e-5)]);
      expect(md["t.arr.str"]?.subType).toBe(GGUFValueType.STRING);

      // Tensor infos: names, shapes (ne0 first), types, aligned offsets; data where the offsets say.
      expect(parsed.tensorInfos.map((t) => t.name)).toEqual(tensorDefs.map((t) => t.name));
      expect(Number(parsed.tensorDataOffset) % alignment).toBe(0);
      let expectedOffset = 0;
      for (const [i, info] of parsed.tensorInfos.entries()) {
        const def = tensorDefs[i] as (typeof tensorDefs)[number];
        expect(info.shape.map(Number)).toEqual(def.shape);
        expect(info.dtype as number).toBe(def.typeId);
        expect(Number(info.offset)).toBe(expectedOffset);
        const start = Number(parsed.tensorDataOffset) + Number(info.offset);
        expect(bytes.subarray(start, start + def.size)).toEqual(Buffer.from(pattern(i, def.size)));
        // Padding after each tensor is zeros.
        const padEnd = Math.ceil((start + def.size) / alignment) * alignment;
        expect(bytes.subarray(start + def.size, padEnd).every((b) => b === 0)).toBe(true);
        expectedOffset = Math.ceil((expectedOffset + def.size) / alignment) * alignment;
      }
      expect(bytes.length).toBe(Number(parsed.tensorDataOffset) + expectedOffset);
    });
  }

  it("writes the same bytes whatever the chunking of tensor data, and reports their sha256", async () => {
    const metadata = { "general.architecture": kv.str("llama") };
    const a = await writeGgufFile(join(dir, "chunk-a.gguf"), { metadata, tensors: tensors(1) });
    const b = await writeGgufFile(join(dir, "chunk-b.gguf"), { metadata, tensors: tensors(1000) });
    expect(a.sha256).toBe(b.sha256);
    expect(readFileSync(join(dir, "chunk-a.gguf"))).toEqual(readFileSync(join(dir, "chunk-b.gguf")));
    const { createHash } = await import("node:crypto");
    expect(
      createHash("sha256")
        .update(readFileSync(join(dir, "chunk-a.gguf")))
        .digest("hex"),
    ).toBe(a.sha256);
  });

  it("waits for the sink to drain: a slow sink never holds much more than its buffer", async () => {
    const chunk = 4096;
    let maxBuffered = 0;
    const received: Buffer[] = [];
    let writesReturnedFalse = 0;
    const sink = new Writable({
      highWaterMark: 16 * 1024,
      write(data: Buffer, _enc, done) {
        received.push(Buffer.from(data));
        setTimeout(done, 1); // a slow disk
      },
    });
    const origWrite = sink.write.bind(sink);
    sink.write = ((data: Uint8Array) => {
      const ok = origWrite(data);
      if (!ok) writesReturnedFalse++;
      maxBuffered = Math.max(maxBuffered, sink.writableLength);
      return ok;
    }) as typeof sink.write;
    const size = 64 * chunk;
    const result = await writeGguf(sink, {
      metadata: { "general.architecture": kv.str("llama") },
      tensors: [{ name: "big", shape: [size / 2], typeId: GGML_TYPE_ID.f16, data: pieces(pattern(0, size), chunk) }],
    });
    await new Promise<void>((resolve) => sink.end(resolve));
    expect(writesReturnedFalse).toBeGreaterThan(0);
    // Without backpressure all 256 KiB would queue up; with it the buffer stays near the 16 KiB mark.
    expect(maxBuffered).toBeLessThanOrEqual(16 * 1024 + chunk);
    expect(Buffer.concat(received).length).toBe(result.bytes);
  });

  it("rejects tensor data that is shorter or longer than the tensor", async () => {
    const metadata = { "general.architecture": kv.str("llama") };
    const short = [{ name: "t", shape: [8], typeId: GGML_TYPE_ID.f32, data: [new Uint8Array(31)] }];
    await expect(writeGgufFile(join(dir, "short.gguf"), { metadata, tensors: short })).rejects.toThrow(
      /got 31 bytes of data, expected 32/,
    );
    const long = [{ name: "t", shape: [8], typeId: GGML_TYPE_ID.f32, data: [new Uint8Array(32), new Uint8Array(1)] }];
    await expect(writeGgufFile(join(dir, "long.gguf"), { metadata, tensors: long })).rejects.toThrow(
      /longer than its 32 bytes/,
    );
  });

  it("refuses values that do not fit their type, duplicate tensors and rows that are not whole blocks", () => {
    const t = (over: Partial<GgufTensorSpec>): GgufTensorSpec => ({
      name: "t",
      shape: [32],
      typeId: 0,
      data: [],
      ...over,
    });
    expect(() => layoutGguf({ metadata: { x: { type: GgufType.UINT8, value: 256 } }, tensors: [] })).toThrow(
      /x: 256 is not an integer/,
    );
    expect(() => layoutGguf({ metadata: { x: kv.arr(GgufType.INT32, [1, 2.5]) }, tensors: [] })).toThrow(/x\[1\]/);
    expect(() => layoutGguf({ metadata: { x: { type: GgufType.ARRAY, value: [1] } }, tensors: [] })).toThrow(/subType/);
    expect(() => layoutGguf({ metadata: { x: kv.str(5 as unknown as string) }, tensors: [] })).toThrow(
      /expected a string/,
    );
    expect(() => layoutGguf({ metadata: {}, tensors: [t({}), t({})] })).toThrow(/duplicate/);
    expect(() => layoutGguf({ metadata: {}, tensors: [t({ shape: [48, 2], typeId: GGML_TYPE_ID.q8_0 })] })).toThrow(
      /whole q8_0 blocks of 32/,
    );
    expect(() => layoutGguf({ metadata: { "general.alignment": kv.u32(12) }, tensors: [] })).toThrow(/alignment/);
  });
});
