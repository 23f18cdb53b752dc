import { describe, expect, it } from "vitest";
import { createKernel, WEIGHT_STD } from "../../src/model/kernel.js";

const k = createKernel();

/**
 * Independent decoders, written from llama.cpp's ggml-quants.c (dequantize_row_q8_0 / dequantize_row_q4_0) and the
 * IEEE half format, not from the encoder under test.
 */
function halfToFloat(lo: number, hi: number): number {
  const h = lo | (hi << 8);
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

function decodeQ8_0(bytes: Uint8Array, n: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < n / 32; b++) {
    const base = b * 34;
    const d = halfToFloat(bytes[base] as number, bytes[base + 1] as number);
    for (let j = 0; j < 32; j++) {
      const q = ((bytes[base + 2 + j] as number) << 24) >> 24; // int8
      out.push(q * d);
    }
  }
  return out;
}

function decodeQ4_0(bytes: Uint8Array, n: number): number[] {
  const out: number[] = new Array(n);
  for (let b = 0; b < n / 32; b++) {
    const base = b * 18;
    const d = halfToFloat(bytes[base] as number, bytes[base + 1] as number);
    for (let j = 0; j < 16; j++) {
      const byte = bytes[base + 2 + j] as number;
      out[b * 32 + j] = ((byte & 0x0f) - 8) * d; // low nibble: element j
      out[b * 32 + j + 16] = ((byte >> 4) - 8) * d; // high nibble: element j + 16
    }
  }
  return out;
}

/** A reproducible spread of floats (not from the kernel's generator). */
function sample(n: number, seed: number, scale = 0.05): Float32Array {
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    x[i] = ((s / 2 ** 32) * 2 - 1) * scale * (1 + (i % 7));
  }
  return x;
}

describe("f16 conversion", () => {
  it("rounds to nearest even, including subnormals, overflow and signed zero", () => {
    expect(k.f32ToF16(1)).toBe(0x3c00);
    expect(k.f32ToF16(-2)).toBe(0xc000);
    expect(k.f32ToF16(0.1)).toBe(0x2e66);
    expect(k.f32ToF16(65504)).toBe(0x7bff);
    expect(k.f32ToF16(65519)).toBe(0x7bff);
    expect(k.f32ToF16(65520)).toBe(0x7c00);
    expect(k.f32ToF16(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(k.f32ToF16(Number.NaN) & 0x7e00).toBe(0x7e00);
    expect(k.f32ToF16(-0)).toBe(0x8000);
    expect(k.f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(k.f32ToF16(2 ** -25)).toBe(0x0000); // tie -> even (0)
    expect(k.f32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: tie -> even (2)
    expect(k.f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the smallest normal
    expect(k.f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even mantissa
    expect(k.f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it("maps every half back to itself through float32", () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaNs
      if (k.f32ToF16(k.f16ToF32(h)) !== h || !Object.is(k.f16ToF32(h), halfToFloat(h & 0xff, h >> 8))) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });
});

describe("q8_0 blocks (f16 scale + 32 int8)", () => {
  it("lays out a known block as llama.cpp does", () => {
    const x = Array.from({ length: 32 }, (_, j) => j); // amax 31 -> d = 31/127
    const out = new Uint8Array(34);
    expect(k.quantizeQ8_0(x, 32, out, 0)).toBe(34);
    expect((out[0] as number) | ((out[1] as number) << 8)).toBe(k.f32ToF16(Math.fround(31 / 127)));
    expect(out[2]).toBe(0);
    expect(out[3]).toBe(4); // 127/31 = 4.097 -> 4
    expect(out[33]).toBe(127);
    const neg = new Uint8Array(34);
    k.quantizeQ8_0(
      x.map((v) => -v),
      32,
      neg,
      0,
    );
    expect(((neg[33] as number) << 24) >> 24).toBe(-127);
  });

  it("decodes (independently) to within half a step of the input", () => {
    const n = 32 * 64;
    const x = sample(n, 7);
    const out = new Uint8Array((n / 32) * 34);
    k.quantizeQ8_0(x, n, out, 0);
    const y = decodeQ8_0(out, n);
    for (let b = 0; b < n / 32; b++) {
      const amax = Math.max(...Array.from(x.subarray(b * 32, b * 32 + 32), Math.abs));
      const d = amax / 127;
      for (let j = 0; j < 32; j++) {
        // d/2 from rounding, plus the f16 rounding of d itself (|q| <= 127, relative error <= 2^-11)
        expect(Math.abs((y[b * 32 + j] as number) - (x[b * 32 + j] as number))).toBeLessThanOrEqual(
          d * (0.5 + 127 * 2 ** -11) + 1e-12,
        );
      }
    }
  });
});

describe("q4_0 blocks (f16 scale + 16 bytes of nibbles)", () => {
  it("puts elements 0..15 in low nibbles and 16..31 in high nibbles, value = (q - 8) * d", () => {
    const x = Array.from({ length: 32 }, (_, j) => j - 16); // max |x| is x[0] = -16 -> d = -16 / -8 = 2
    const out = new Uint8Array(18);
    expect(k.quantizeQ4_0(x, 32, out, 0)).toBe(18);
    expect([out[0], out[1]]).toEqual([0x00, 0x40]); // f16 2.0
    expect(out[2]).toBe(0x80); // x0 = -16 -> q 0 (low); x16 = 0 -> q 8 (high)
    expect(out[3]).toBe(0x91); // x1 = -15 -> q 1; x17 = 1 -> q 9
    expect(out[17]).toBe(0xf8); // x15 = -1 -> q 8; x31 = 15 -> 16 clamped to 15
    const y = decodeQ4_0(out, 32);
    expect(y[0]).toBe(-16);
    expect(y[16]).toBe(0);
    expect(y[31]).toBe(14); // the clamp
  });

  it("decodes (independently) to within one step of the input", () => {
    const n = 32 * 64;
    const x = sample(n, 11);
    const out = new Uint8Array((n / 32) * 18);
    k.quantizeQ4_0(x, n, out, 0);
    const y = decodeQ4_0(out, n);
    for (let b = 0; b < n / 32; b++) {
      const amax = Math.max(...Array.from(x.subarray(b * 32, b * 32 + 32), Math.abs));
      const d = amax / 8;
      for (let j = 0; j < 32; j++) {
        expect(Math.abs((y[b * 32 + j] as number) - (x[b * 32 + j] as number))).toBeLessThanOrEqual(d * 1.01);
      }
    }
  });
});

describe("weight chunks", () => {
  const state: [number, number, number, number] = [0x12345678, 0x9abcdef0, 0x0fedcba9, 0x87654321];
  const n = 32 * 1024;
  const floats = new Float32Array(k.generateChunk({ fill: "normal", typeId: 0, elements: n, state }).buffer);

  it("draws normal(0, 0.02) weights", () => {
    let sum = 0;
    let sq = 0;
    for (const v of floats) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    const std = Math.sqrt(sq / n - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(std).toBeGreaterThan(WEIGHT_STD * 0.97);
    expect(std).toBeLessThan(WEIGHT_STD * 1.03);
    const beyond2 = floats.filter((v) => Math.abs(v) > 2 * WEIGHT_STD).length / n;
    expect(beyond2).toBeGreaterThan(0.035); // normal: 4.55% beyond 2 sigma; uniform would be 0
    expect(beyond2).toBeLessThan(0.056);
  });

  it("encodes the same random stream as f16, q8_0 and q4_0", () => {
    const f16 = new Uint16Array(k.generateChunk({ fill: "normal", typeId: 1, elements: n, state }).buffer);
    expect(Array.from(f16.subarray(0, 100))).toEqual(Array.from(floats.subarray(0, 100), (v) => k.f32ToF16(v)));
    const q8 = k.generateChunk({ fill: "normal", typeId: 8, elements: n, state });
    const q8want = new Uint8Array((n / 32) * 34);
    k.quantizeQ8_0(floats, n, q8want, 0);
    expect(q8).toEqual(q8want);
    const q4 = k.generateChunk({ fill: "normal", typeId: 2, elements: n, state });
    const q4want = new Uint8Array((n / 32) * 18);
    k.quantizeQ4_0(floats, n, q4want, 0);
    expect(q4).toEqual(q4want);
  });

  it("depends on the PRNG state and fills norms with 1.0", () => {
    const other = new Float32Array(
      k.generateChunk({ fill: "normal", typeId: 0, elements: 64, state: [1, 2, 3, 4] }).buffer,
    );
    expect(Array.from(other)).not.toEqual(Array.from(floats.subarray(0, 64)));
    const ones = new Float32Array(k.generateChunk({ fill: "ones", typeId: 0, elements: 64, state }).buffer);
    expect(ones.every((v) => v === 1)).toBe(true);
  });
});
