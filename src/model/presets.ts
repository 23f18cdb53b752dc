import type { TensorType } from "./ggml-types.js";

/**
 * Shapes of the synthetic models (llama architecture). The vocabulary size is not part of a preset: it comes from the
 * tokenizer (`--vocab`, llama-spm's 32000 by default), so parameter counts below assume llama-spm.
 *
 * | preset | layers | embd | heads (kv) | ff    | params (llama-spm) | default type |
 * | tiny   | 2      | 64   | 4 (4)      | 256   | 4.2M               | f16          |
 * | small  | 8      | 384  | 6 (6)      | 1024  | 38.7M              | q8_0         |
 * | medium | 16     | 1024 | 16 (4)     | 2816  | 245M               | q8_0         |
 * | 7b     | 32     | 4096 | 32 (32)    | 11008 | 6.74B              | q4_0         |
 */
export interface ModelShape {
  layers: number;
  embedding: number;
  heads: number;
  headsKv: number;
  ff: number;
  contextLength: number;
  ropeFreqBase: number;
  rmsEps: number;
}

export interface Preset extends ModelShape {
  /** The preset's name, or `<preset>-L<n>` when `--layers` overrides its depth. */
  name: PresetName | `${PresetName}-L${number}`;
  defaultType: ModelType;
  description: string;
}

/** Types a synthetic model can be written in (1-D norm tensors are always f32). */
export type ModelType = Exclude<TensorType, "f32">;
export const MODEL_TYPES: readonly ModelType[] = ["f16", "q8_0", "q4_0"];

export const PRESET_NAMES = ["tiny", "small", "medium", "7b"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

const LLAMA2_ROPE = { ropeFreqBase: 10000, rmsEps: 1e-5 };

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  tiny: {
    name: "tiny",
    layers: 2,
    embedding: 64,
    heads: 4,
    headsKv: 4,
    ff: 256,
    contextLength: 2048,
    ...LLAMA2_ROPE,
    defaultType: "f16",
    description: "smallest model that exercises every code path; thousands of tokens/s on 2 cores",
  },
  small: {
    name: "small",
    layers: 8,
    embedding: 384,
    heads: 6,
    headsKv: 6,
    ff: 1024,
    contextLength: 2048,
    ...LLAMA2_ROPE,
    defaultType: "q8_0",
    description: "a few hundred tokens/s on 2 CPU cores; CI-sized",
  },
  medium: {
    name: "medium",
    layers: 16,
    embedding: 1024,
    heads: 16,
    headsKv: 4,
    ff: 2816,
    contextLength: 4096,
    ...LLAMA2_ROPE,
    defaultType: "q8_0",
    description: "grouped-query attention, ~250M parameters: a CPU model with realistic compute per token",
  },
  "7b": {
    name: "7b",
    layers: 32,
    embedding: 4096,
    heads: 32,
    headsKv: 32,
    ff: 11008,
    contextLength: 4096,
    ...LLAMA2_ROPE,
    defaultType: "q4_0",
    description: "Llama-2-7B's shape: GPU benchmarks with the memory traffic of a real 7B model",
  },
};

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

export function isModelType(name: string): name is ModelType {
  return (MODEL_TYPES as readonly string[]).includes(name);
}

/** One tensor of a llama model: GGUF name and dims (ne0 first). */
export interface TensorPlan {
  name: string;
  shape: [number] | [number, number];
  /** Norm weights (all ones, f32) vs random matrices. */
  role: "norm" | "matrix";
}

/** Per-head size; the rope dimension count. */
export function headDim(shape: ModelShape): number {
  return shape.embedding / shape.heads;
}

/** The tensors of a llama model, in file order (names from llama.cpp `gguf-py/gguf/constants.py`, MODEL_ARCH.LLAMA). */
export function llamaTensors(shape: ModelShape, vocabSize: number): TensorPlan[] {
  const e = shape.embedding;
  const kvDim = headDim(shape) * shape.headsKv;
  const tensors: TensorPlan[] = [{ name: "token_embd.weight", shape: [e, vocabSize], role: "matrix" }];
  for (let l = 0; l < shape.layers; l++) {
    const p = `blk.${l}`;
    tensors.push(
      { name: `${p}.attn_norm.weight`, shape: [e], role: "norm" },
      { name: `${p}.attn_q.weight`, shape: [e, e], role: "matrix" },
      { name: `${p}.attn_k.weight`, shape: [e, kvDim], role: "matrix" },
      { name: `${p}.attn_v.weight`, shape: [e, kvDim], role: "matrix" },
      { name: `${p}.attn_output.weight`, shape: [e, e], role: "matrix" },
      { name: `${p}.ffn_norm.weight`, shape: [e], role: "norm" },
      { name: `${p}.ffn_gate.weight`, shape: [e, shape.ff], role: "matrix" },
      { name: `${p}.ffn_up.weight`, shape: [e, shape.ff], role: "matrix" },
      { name: `${p}.ffn_down.weight`, shape: [shape.ff, e], role: "matrix" },
    );
  }
  tensors.push(
    { name: "output_norm.weight", shape: [e], role: "norm" },
    { name: "output.weight", shape: [e, vocabSize], role: "matrix" },
  );
  return tensors;
}

/** Parameter count of a llama model of this shape (untied output, no biases). */
export function llamaParams(shape: ModelShape, vocabSize: number): number {
  return llamaTensors(shape, vocabSize).reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
}
