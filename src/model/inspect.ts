import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { gguf } from "@huggingface/gguf";
import type { ModelFingerprint } from "../target/types.js";
import { BadInputError } from "../util/errors.js";
import { partialUtf8TokenIds } from "./banned-tokens.js";
import { GGML_TYPES, LLAMA_FILE_TYPES, tensorBytes } from "./ggml-types.js";

/**
 * Reads what a GGUF model is (shape, quantization, tokenizer, whether tokengate made it) for the results'
 * environment fingerprint and for the targets. Parsing uses @huggingface/gguf; this module adds the checks it lacks:
 * it reads past the end of a short file as zeros, so truncation is detected here by comparing the header's and the
 * tensor data's extents with the file size.
 */

/** A type alias, not an interface, so it stays assignable to ModelFingerprint's `Record<string, number>`. */
export type ModelShapeInfo = {
  params: number;
  layers: number;
  embedding: number;
  heads: number;
  headsKv: number;
  ff: number;
  vocab: number;
  contextLength: number;
};

export interface ModelInfo extends ModelFingerprint {
  path: string;
  /** Absent when hashing was skipped (`hash: false`). */
  sha256?: string;
  sizeBytes: number;
  architecture: string;
  shape: ModelShapeInfo;
  /** `general.file_type` by name (`q4_0`, `q4_k_m`); else the most common type of the 2-D tensors. */
  quantization: string;
  synthetic: boolean;
  /** Synthetic: the vocabulary tokengate copied (`llama-spm`). Real: `tokenizer.ggml.model`[/`tokenizer.ggml.pre`]. */
  vocab: string;
  /**
   * Token ids a load generator should ban with logit_bias: for synthetic models the tokens that are a fragment of a
   * UTF-8 character (SentencePiece BYTE tokens; byte-level BPE tokens that are not valid UTF-8 alone), which random
   * weights emit and which make llama-server answer HTTP 500 (shared/FACTS.md, banned-tokens.ts). Empty for real models.
   */
  bannedTokenIds: number[];
}

export interface InspectOptions {
  /** Compute the sha256 of the whole file (streamed; ~1-2 s per GB). Default true. */
  hash?: boolean;
  /** Accept architectures other than llama (default false: tokengate's targets are checked with llama only). */
  anyArchitecture?: boolean;
}

const HINT_SYNTH = "write a synthetic model: tokengate model synth --preset tiny --out model.gguf";

export async function inspectModel(path: string, opts: InspectOptions = {}): Promise<ModelInfo> {
  let sizeBytes: number;
  try {
    const s = await stat(path);
    if (s.isDirectory())
      throw new BadInputError("is a directory, not a GGUF model file", { subject: path, hint: HINT_SYNTH });
    sizeBytes = s.size;
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new BadInputError(
      code === "ENOENT" ? "model file not found" : `cannot read the model file (${code ?? String(err)})`,
      {
        subject: path,
        hint: HINT_SYNTH,
        cause: err,
      },
    );
  }
  if (sizeBytes < 24) {
    throw new BadInputError(`not a GGUF file: only ${sizeBytes} bytes`, { subject: path, hint: HINT_SYNTH });
  }

  let parsed: Awaited<ReturnType<typeof parseGguf>>;
  try {
    parsed = await parseGguf(path);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const what = /magic number/.test(message)
      ? "not a GGUF file (it does not start with the bytes GGUF)"
      : `corrupt or truncated GGUF header (${message})`;
    throw new BadInputError(what, { subject: path, hint: HINT_SYNTH, cause: err });
  }
  const { metadata: md, tensorInfos, tensorDataOffset, tensorInfoByteRange } = parsed;

  if (tensorInfoByteRange[1] > sizeBytes) {
    throw new BadInputError(
      // How long the header should be is unknowable: past the end the parser read zeros.
      `truncated: the file ends (at ${sizeBytes} bytes) inside the GGUF header`,
      {
        subject: path,
        hint: "the file is incomplete (an interrupted download or copy?); fetch or synthesize it again",
      },
    );
  }
  let dataEnd = Number(tensorDataOffset);
  let params = 0;
  const typeCounts = new Map<number, number>();
  for (const t of tensorInfos) {
    const elements = t.shape.reduce((a, b) => a * Number(b), 1);
    params += elements;
    if (t.shape.length >= 2) typeCounts.set(t.dtype, (typeCounts.get(t.dtype) ?? 0) + 1);
    let bytes: number | undefined;
    try {
      bytes = tensorBytes(t.dtype, elements);
    } catch {
      throw new BadInputError(`corrupt: tensor ${t.name} has ${elements} elements, not whole blocks of its type`, {
        subject: path,
      });
    }
    if (bytes !== undefined) dataEnd = Math.max(dataEnd, Number(tensorDataOffset) + Number(t.offset) + bytes);
  }
  if (dataEnd > sizeBytes) {
    throw new BadInputError(`truncated: the tensor data ends at byte ${dataEnd} but the file has ${sizeBytes} bytes`, {
      subject: path,
      hint: "the file is incomplete (an interrupted download or copy?); fetch or synthesize it again",
    });
  }

  const architecture = str(md["general.architecture"]);
  if (!architecture) {
    throw new BadInputError("corrupt or not a model: the GGUF has no general.architecture key", {
      subject: path,
      hint: HINT_SYNTH,
    });
  }
  if (architecture !== "llama" && !opts.anyArchitecture) {
    throw new BadInputError(
      `architecture "${architecture}" is not supported; tokengate runs llama-architecture models`,
      {
        subject: path,
        hint: "use a llama-architecture GGUF (Llama, Mistral, TinyLlama...) or a synthetic one: tokengate model synth --preset tiny --out model.gguf",
      },
    );
  }
  const a = (key: string): number => num(md[`${architecture}.${key}`]) ?? 0;
  const tokens = md["tokenizer.ggml.tokens"];
  const vocabSize = a("vocab_size") || (Array.isArray(tokens) ? tokens.length : 0);
  const synthetic = md["tokengate.synthetic"] === true;

  const fileType = num(md["general.file_type"]);
  let quantization = fileType !== undefined ? LLAMA_FILE_TYPES[fileType] : undefined;
  if (!quantization) {
    const common = [...typeCounts.entries()].sort((x, y) => y[1] - x[1])[0];
    quantization = common ? (GGML_TYPES[common[0]]?.name ?? `ggml type ${common[0]}`) : "unknown";
  }

  const bannedTokenIds = synthetic
    ? partialUtf8TokenIds({
        model: md["tokenizer.ggml.model"],
        tokens: md["tokenizer.ggml.tokens"],
        tokenTypes: md["tokenizer.ggml.token_type"],
      })
    : [];
  const heads = a("attention.head_count");
  const info: ModelInfo = {
    path,
    sizeBytes,
    architecture,
    shape: {
      params,
      layers: a("block_count"),
      embedding: a("embedding_length"),
      heads,
      headsKv: a("attention.head_count_kv") || heads,
      ff: a("feed_forward_length"),
      vocab: vocabSize,
      contextLength: a("context_length"),
    },
    quantization,
    synthetic,
    vocab: synthetic
      ? (str(md["tokengate.vocab"]) ?? "unknown")
      : [str(md["tokenizer.ggml.model"]), str(md["tokenizer.ggml.pre"])]
          .filter((x) => x && x !== "default")
          .join("/") || "none",
    bannedTokenIds,
  };
  if (opts.hash !== false) info.sha256 = await sha256File(path);
  return info;
}

async function parseGguf(path: string) {
  const r = await gguf(path, { allowLocalFile: true });
  return { ...r, metadata: r.metadata as unknown as Record<string, unknown> };
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

/** sha256 of a file, streamed in 4 MiB reads (models are GBs). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 2 ** 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
