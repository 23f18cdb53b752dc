/**
 * ggml tensor types and llama.cpp file types, as numbered in llama.cpp's `gguf-py/gguf/constants.py`
 * (`GGMLQuantizationType`, `GGML_QUANT_SIZES`, `LlamaFileType`) at the source node-llama-cpp ships (tag v0.4.0).
 *
 * The writer only produces f32, f16, q8_0 and q4_0; the full table is here so that `inspectModel` can check that a
 * real model's tensor data fits in its file (a truncated download is the most common broken GGUF).
 */

/** Tensor types tokengate writes. */
export type TensorType = "f32" | "f16" | "q8_0" | "q4_0";

export interface GgmlTypeLayout {
  name: string;
  /** Elements per block (1 for plain types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

/** ggml type id -> block layout. */
export const GGML_TYPES: Readonly<Record<number, GgmlTypeLayout>> = {
  0: { name: "f32", blockSize: 1, typeSize: 4 },
  1: { name: "f16", blockSize: 1, typeSize: 2 },
  2: { name: "q4_0", blockSize: 32, typeSize: 18 },
  3: { name: "q4_1", blockSize: 32, typeSize: 20 },
  6: { name: "q5_0", blockSize: 32, typeSize: 22 },
  7: { name: "q5_1", blockSize: 32, typeSize: 24 },
  8: { name: "q8_0", blockSize: 32, typeSize: 34 },
  9: { name: "q8_1", blockSize: 32, typeSize: 40 },
  10: { name: "q2_k", blockSize: 256, typeSize: 84 },
  11: { name: "q3_k", blockSize: 256, typeSize: 110 },
  12: { name: "q4_k", blockSize: 256, typeSize: 144 },
  13: { name: "q5_k", blockSize: 256, typeSize: 176 },
  14: { name: "q6_k", blockSize: 256, typeSize: 210 },
  15: { name: "q8_k", blockSize: 256, typeSize: 292 },
  16: { name: "iq2_xxs", blockSize: 256, typeSize: 66 },
  17: { name: "iq2_xs", blockSize: 256, typeSize: 74 },
  18: { name: "iq3_xxs", blockSize: 256, typeSize: 98 },
  19: { name: "iq1_s", blockSize: 256, typeSize: 50 },
  20: { name: "iq4_nl", blockSize: 32, typeSize: 18 },
  21: { name: "iq3_s", blockSize: 256, typeSize: 110 },
  22: { name: "iq2_s", blockSize: 256, typeSize: 82 },
  23: { name: "iq4_xs", blockSize: 256, typeSize: 136 },
  24: { name: "i8", blockSize: 1, typeSize: 1 },
  25: { name: "i16", blockSize: 1, typeSize: 2 },
  26: { name: "i32", blockSize: 1, typeSize: 4 },
  27: { name: "i64", blockSize: 1, typeSize: 8 },
  28: { name: "f64", blockSize: 1, typeSize: 8 },
  29: { name: "iq1_m", blockSize: 256, typeSize: 56 },
  30: { name: "bf16", blockSize: 1, typeSize: 2 },
  34: { name: "tq1_0", blockSize: 256, typeSize: 54 },
  35: { name: "tq2_0", blockSize: 256, typeSize: 66 },
  39: { name: "mxfp4", blockSize: 32, typeSize: 17 },
  40: { name: "nvfp4", blockSize: 64, typeSize: 36 },
  41: { name: "q1_0", blockSize: 128, typeSize: 18 },
  42: { name: "q2_0", blockSize: 64, typeSize: 18 },
};

/** ggml type ids of the types tokengate writes. */
export const GGML_TYPE_ID: Readonly<Record<TensorType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 };

/** `general.file_type` (llama.cpp's `LlamaFileType`) -> the name users know (`q4_k_m`). */
export const LLAMA_FILE_TYPES: Readonly<Record<number, string>> = {
  0: "f32",
  1: "f16",
  2: "q4_0",
  3: "q4_1",
  7: "q8_0",
  8: "q5_0",
  9: "q5_1",
  10: "q2_k",
  11: "q3_k_s",
  12: "q3_k_m",
  13: "q3_k_l",
  14: "q4_k_s",
  15: "q4_k_m",
  16: "q5_k_s",
  17: "q5_k_m",
  18: "q6_k",
  19: "iq2_xxs",
  20: "iq2_xs",
  21: "q2_k_s",
  22: "iq3_xs",
  23: "iq3_xxs",
  24: "iq1_s",
  25: "iq4_nl",
  26: "iq3_s",
  27: "iq3_m",
  28: "iq2_s",
  29: "iq2_m",
  30: "iq4_xs",
  31: "iq1_m",
  32: "bf16",
  36: "tq1_0",
  37: "tq2_0",
  38: "mxfp4_moe",
  39: "nvfp4",
  40: "q1_0",
  41: "q2_0",
};

/** `general.file_type` for the model types tokengate writes ("mostly X": 1-D norm tensors stay f32). */
export const FILE_TYPE_ID: Readonly<Record<Exclude<TensorType, "f32">, number>> = { f16: 1, q4_0: 2, q8_0: 7 };

/**
 * Bytes of a tensor with `elements` elements of ggml type `typeId`, or undefined for a type this table does not know.
 * Throws when the element count is not a whole number of blocks (ggml requires rows to be whole blocks).
 */
export function tensorBytes(typeId: number, elements: number): number | undefined {
  const layout = GGML_TYPES[typeId];
  if (!layout) return undefined;
  if (elements % layout.blockSize !== 0) {
    throw new RangeError(`${elements} elements is not a whole number of ${layout.name} blocks of ${layout.blockSize}`);
  }
  return (elements / layout.blockSize) * layout.typeSize;
}
