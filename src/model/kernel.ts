/**
 * The number-crunching core of the synthetic model writer: a seeded PRNG, a normal distribution, f16 conversion and
 * q8_0 / q4_0 block encoding, producing one chunk of one tensor's bytes at a time.
 *
 * Everything lives inside `createKernel()` and refers to nothing outside it, because the worker threads run this very
 * function from its source text (`createKernel.toString()`, see worker-pool.ts): worker files would need their own
 * build entry in the bundled action, a string of source travels with any bundle. Keep it self-contained: no imports,
 * no module-level helpers, plain data in and out.
 *
 * Layouts follow llama.cpp's `ggml/src/ggml-quants.c` (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`) including
 * their float32 rounding steps (`Math.fround`), so a block encodes to the same bytes llama-quantize writes for the
 * same input (checked in test/model/synth-load.test.ts).
 */

/** One chunk to generate. Plain data: it crosses a worker boundary. */
export interface ChunkJob {
  /** "normal": N(0, 1) * scale; "ones": every element 1.0 (RMS norm weights). */
  fill: "normal" | "ones";
  /** ggml type id: 0 f32, 1 f16, 2 q4_0, 8 q8_0. */
  typeId: number;
  /** Elements in this chunk; a multiple of 32 for q8_0 / q4_0. */
  elements: number;
  /** xoshiro128** state for this chunk (four uint32, not all zero). */
  state: [number, number, number, number];
}

export interface Kernel {
  /** The bytes of one chunk, laid out as ggml stores that type. */
  generateChunk(job: ChunkJob): Uint8Array;
  /** float32 -> IEEE half bits, round to nearest even (what ggml's GGML_FP32_TO_FP16 does). */
  f32ToF16(value: number): number;
  f16ToF32(bits: number): number;
  /** Quantize `n` floats (a multiple of 32) from `x` into `out` at `offset`; returns bytes written. */
  quantizeQ8_0(x: ArrayLike<number>, n: number, out: Uint8Array, offset: number): number;
  quantizeQ4_0(x: ArrayLike<number>, n: number, out: Uint8Array, offset: number): number;
  /** The 65536-entry table of scaled normal values that weights are drawn from (float32). */
  normalTable: Float32Array;
}

/** Standard deviation of the random weights (llama-style init; FACTS.md: normal * 0.02). */
export const WEIGHT_STD = 0.02;

export function createKernel(): Kernel {
  // Kept inside the function on purpose (see the file comment).
  const STD = 0.02;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const fround = Math.fround;

  function f32ToF16(value: number): number {
    f32[0] = value;
    const w = u32[0] as number;
    const sign = (w >>> 16) & 0x8000;
    const abs = w & 0x7fffffff;
    if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00); // NaN, Inf
    if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to Inf
    if (abs < 0x38800000) {
      // Below the smallest normal half (2^-14): a subnormal half counts units of 2^-24. Random weights of std 0.02
      // land here often, so this branch matters. The product is exact in float64.
      const units = Math.abs(f32[0] as number) * 16777216;
      let q = Math.floor(units);
      const rest = units - q;
      if (rest > 0.5 || (rest === 0.5 && (q & 1) === 1)) q++;
      return sign | q;
    }
    const exponent = (abs >>> 23) - 112; // rebias 127 -> 15
    let h = (exponent << 10) | ((abs & 0x7fffff) >>> 13);
    const rest = abs & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is still correct
    return sign | h;
  }

  function f16ToF32(bits: number): number {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >>> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    if (exponent === 0) return sign * mantissa * 2 ** -24;
    if (exponent === 31) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }

  /**
   * Inverse normal CDF (Peter Acklam's rational approximation, relative error < 1.2e-9). Only used to build the
   * table below, never per weight.
   */
  function normalQuantile(p: number): number {
    const a = [
      -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
      2.506628277459239,
    ];
    const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
    const c = [
      -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
      2.938163982698783,
    ];
    const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
    const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
    const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
    const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
    const [d0, d1, d2, d3] = d as [number, number, number, number];
    const pLow = 0.02425;
    if (p < pLow) {
      const q = Math.sqrt(-2 * Math.log(p));
      return (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
    }
    const q = p - 0.5;
    const r = q * q;
    return (
      ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) /
      (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1)
    );
  }

  /**
   * Normal weights come from a table: entry i is STD * Phi^-1((i + 0.5) / 65536), so a uniform 16-bit index gives a
   * normal sample (quantized to 65536 levels, tails to +-4.3 sigma). Each 32-bit PRNG output yields two weights: a
   * table load instead of Box-Muller's log/sqrt/cos per weight. The table is symmetric by construction (the upper half
   * mirrors the lower), and its values are rounded to float32 like the float weights a C converter would hold.
   */
  const normalTable = new Float32Array(65536);
  for (let i = 0; i < 32768; i++) {
    const v = STD * normalQuantile((i + 0.5) / 65536);
    normalTable[i] = v;
    normalTable[65535 - i] = -v;
  }
  const halfTable = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) halfTable[i] = f32ToF16(normalTable[i] as number);

  /** C's roundf: halfway cases away from zero (Math.round rounds them up). */
  function roundAway(x: number): number {
    return x >= 0 ? Math.floor(x + 0.5) : -Math.floor(0.5 - x);
  }

  function quantizeQ8_0(x: ArrayLike<number>, n: number, out: Uint8Array, offset: number): number {
    let o = offset;
    for (let base = 0; base < n; base += 32) {
      let amax = 0;
      for (let j = 0; j < 32; j++) {
        const v = Math.abs(x[base + j] as number);
        if (v > amax) amax = v;
      }
      const d = fround(amax / 127);
      const id = d ? fround(1 / d) : 0;
      const h = f32ToF16(d);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
      o += 2;
      for (let j = 0; j < 32; j++) out[o + j] = roundAway(fround((x[base + j] as number) * id)) & 0xff;
      o += 32;
    }
    return o - offset;
  }

  function quantizeQ4_0(x: ArrayLike<number>, n: number, out: Uint8Array, offset: number): number {
    let o = offset;
    for (let base = 0; base < n; base += 32) {
      // The signed value with the largest magnitude (first one wins, as in C) maps to -8.
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[base + j] as number;
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = fround(max / -8);
      const id = d ? fround(1 / d) : 0;
      const h = f32ToF16(d);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
      o += 2;
      // Low nibble: element j; high nibble: element j + 16. (int8_t)(x + 8.5f) truncates toward zero.
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, Math.trunc(fround(fround((x[base + j] as number) * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(fround(fround((x[base + 16 + j] as number) * id) + 8.5)));
        out[o + j] = q0 | (q1 << 4);
      }
      o += 16;
    }
    return o - offset;
  }

  function generateChunk(job: ChunkJob): Uint8Array {
    const n = job.elements;
    if (job.fill === "ones") {
      if (job.typeId === 0) {
        const out = new Float32Array(n).fill(1);
        return new Uint8Array(out.buffer);
      }
      if (job.typeId === 1) return new Uint8Array(new Uint16Array(n).fill(0x3c00).buffer);
      throw new Error(`ones fill supports f32/f16, not ggml type ${job.typeId}`);
    }
    // xoshiro128** (Blackman & Vigna), kept in locals for speed.
    let [s0, s1, s2, s3] = job.state;
    if (job.typeId === 1 || job.typeId === 0) {
      // f16 / f32: one PRNG output -> two weights, looked up directly.
      const out16 = job.typeId === 1 ? new Uint16Array(n) : undefined;
      const out32 = job.typeId === 0 ? new Float32Array(n) : undefined;
      for (let i = 0; i < n; i += 2) {
        const r = Math.imul((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25), 9);
        const t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 11) | (s3 >>> 21);
        if (out16) {
          out16[i] = halfTable[r & 0xffff] as number;
          if (i + 1 < n) out16[i + 1] = halfTable[r >>> 16] as number;
        } else if (out32) {
          out32[i] = normalTable[r & 0xffff] as number;
          if (i + 1 < n) out32[i + 1] = normalTable[r >>> 16] as number;
        }
      }
      return new Uint8Array((out16 ?? out32 ?? new Uint8Array(0)).buffer);
    }
    if (job.typeId !== 8 && job.typeId !== 2) throw new Error(`unsupported ggml type ${job.typeId}`);
    if (n % 32 !== 0) throw new Error(`${n} elements is not a whole number of 32-element blocks`);
    const q8 = job.typeId === 8;
    const out = new Uint8Array((n / 32) * (q8 ? 34 : 18));
    const block = new Float64Array(32);
    let o = 0;
    for (let b = 0; b < n; b += 32) {
      for (let j = 0; j < 32; j += 2) {
        const r = Math.imul((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25), 9);
        const t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 11) | (s3 >>> 21);
        block[j] = normalTable[r & 0xffff] as number;
        block[j + 1] = normalTable[r >>> 16] as number;
      }
      o += q8 ? quantizeQ8_0(block, 32, out, o) : quantizeQ4_0(block, 32, out, o);
    }
    return out;
  }

  return { generateChunk, f32ToF16, f16ToF32, quantizeQ8_0, quantizeQ4_0, normalTable };
}
