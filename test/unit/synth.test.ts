import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GGML_TYPE_ID } from "../../src/model/ggml-types.js";
import { GgufType, kv, writeGgufFile } from "../../src/model/gguf-writer.js";
import { inspectModel } from "../../src/model/inspect.js";
import { llamaParams, PRESETS } from "../../src/model/presets.js";
import { defaultModelPath, ensureDefaultModel, SYNTH_FORMAT_VERSION, synthesizeModel } from "../../src/model/synth.js";
import { loadVocab } from "../../src/model/vocab.js";
import type { ModelFingerprint } from "../../src/target/types.js";
import { BadInputError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-synth-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The smallest real model: tiny q4_0 (3 MB). */
const tinyQ4 = (seed: number, threads: number, name: string) =>
  synthesizeModel({ preset: "tiny", type: "q4_0", seed, threads, out: join(dir, name), quiet: true });

async function badInput(p: Promise<unknown> | (() => unknown)): Promise<BadInputError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(BadInputError);
    return err as BadInputError;
  }
  throw new Error("expected a BadInputError");
}

describe("synthesizeModel", () => {
  let first: Awaited<ReturnType<typeof tinyQ4>>;
  beforeAll(async () => {
    first = await tinyQ4(7, 2, "a.gguf");
  });

  it("is deterministic: same arguments give the same sha256 whatever the thread count; another seed differs", async () => {
    const inline = await tinyQ4(7, 0, "b.gguf");
    const oneThread = await tinyQ4(7, 1, "c.gguf");
    expect(inline.sha256).toBe(first.sha256);
    expect(oneThread.sha256).toBe(first.sha256);
    const other = await tinyQ4(8, 2, "d.gguf");
    expect(other.sha256).not.toBe(first.sha256);
    expect(other.bytes).toBe(first.bytes);
  });

  it("writes a llama model with the preset's shape, a real tokenizer and the synthetic markers", async () => {
    const vocab = await loadVocab("llama-spm");
    const spec = await gguf(vocab.file, { allowLocalFile: true, typedMetadata: true });
    const parsed = await gguf(first.path, { allowLocalFile: true, typedMetadata: true });
    const md = parsed.typedMetadata as Record<string, { value: unknown; type: number; subType?: number }>;
    expect(md["general.architecture"]?.value).toBe("llama");
    expect(md["general.name"]?.value).toBe("tokengate-synthetic-tiny-q4_0");
    expect(md["general.file_type"]?.value).toBe(2);
    expect(md["tokengate.synthetic"]).toEqual({ value: true, type: GgufType.BOOL });
    expect(md["tokengate.seed"]?.value).toBe(7);
    expect(md["tokengate.vocab"]?.value).toBe("llama-spm");
    expect(md["llama.attention.head_count_kv"]?.value).toBe(4);
    expect(md["llama.rope.dimension_count"]?.value).toBe(16);
    // Every tokenizer key of the vocab file, unchanged; plus a chat template (llama-spm has none).
    const vocabMd = spec.typedMetadata as Record<string, { value: unknown; type: number }>;
    const tokenizerKeys = Object.keys(vocabMd).filter((k) => k.startsWith("tokenizer."));
    expect(tokenizerKeys.length).toBeGreaterThan(5);
    for (const key of tokenizerKeys) expect(md[key], key).toEqual(vocabMd[key]);
    expect(String(md["tokenizer.chat_template"]?.value)).toContain("[INST]");

    const names = parsed.tensorInfos.map((t) => t.name);
    expect(names.length).toBe(3 + 9 * PRESETS.tiny.layers);
    const byName = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
    expect(byName.get("token_embd.weight")?.shape.map(Number)).toEqual([64, 32000]);
    expect(byName.get("blk.1.ffn_down.weight")?.shape.map(Number)).toEqual([256, 64]);
    expect(byName.get("blk.1.ffn_down.weight")?.dtype as number).toBe(GGML_TYPE_ID.q4_0);
    expect(byName.get("blk.0.attn_norm.weight")?.dtype as number).toBe(GGML_TYPE_ID.f32);
    expect(first.params).toBe(llamaParams(PRESETS.tiny, 32000));
    expect(first.params).toBe(4_227_392);
  });

  it("is read back by inspectModel, with the byte tokens to ban", async () => {
    const info = await inspectModel(first.path);
    expect(info).toMatchObject({
      architecture: "llama",
      quantization: "q4_0",
      synthetic: true,
      vocab: "llama-spm",
      sizeBytes: first.bytes,
      sha256: first.sha256,
      shape: {
        params: first.params,
        layers: 2,
        embedding: 64,
        heads: 4,
        headsKv: 4,
        ff: 256,
        vocab: 32000,
        contextLength: 2048,
      },
    });
    // llama-spm's <0x00>..<0xFF> byte tokens are ids 3..258.
    expect(info.bannedTokenIds).toEqual(Array.from({ length: 256 }, (_, i) => i + 3));
    const fingerprint: ModelFingerprint = info; // compile-time: ModelInfo is a ModelFingerprint
    expect(fingerprint.sha256).toBe(first.sha256);
    expect((await inspectModel(first.path, { hash: false })).sha256).toBeUndefined();
  });

  it("names the flag, the value and the valid choices for bad arguments", async () => {
    const out = join(dir, "never.gguf");
    let e = await badInput(synthesizeModel({ preset: "huge", out }));
    expect(e.subject).toBe("--preset");
    expect(e.message).toMatch(/"huge".*tiny, small, medium, 7b/);
    e = await badInput(synthesizeModel({ preset: "tiny", type: "q5_k", out }));
    expect(e.subject).toBe("--type");
    expect(e.message).toMatch(/"q5_k".*f16, q8_0, q4_0/);
    e = await badInput(synthesizeModel({ preset: "tiny", vocab: "klingon", out }));
    expect(e.subject).toBe("--vocab");
    expect(e.message).toMatch(/"klingon".*llama-spm/);
    e = await badInput(synthesizeModel({ preset: "tiny", seed: -1, out }));
    expect(e.subject).toBe("--seed");
    e = await badInput(synthesizeModel({ preset: "tiny", out: dir }));
    expect(e.subject).toBe("--out");
    expect(e.hint).toBeTruthy();
  });
});

describe("inspectModel errors", () => {
  it("a missing file suggests writing a synthetic model", async () => {
    const e = await badInput(inspectModel(join(dir, "nope.gguf")));
    expect(e.subject).toBe(join(dir, "nope.gguf"));
    expect(e.message).toMatch(/not found/);
    expect(e.hint).toContain("tokengate model synth --preset tiny --out model.gguf");
  });

  it("a file that is not GGUF says so", async () => {
    const f = join(dir, "readme.gguf");
    writeFileSync(f, "# not a model, just some markdown text\n".repeat(10));
    const e = await badInput(inspectModel(f));
    expect(e.subject).toBe(f);
    expect(e.message).toMatch(/not a GGUF file/);
  });

  it("a truncated model says where its data should end", async () => {
    const f = join(dir, "cut.gguf");
    writeFileSync(f, readFileSync(join(dir, "a.gguf")));
    truncateSync(f, 2_000_000);
    const e = await badInput(inspectModel(f));
    expect(e.message).toMatch(/truncated: the tensor data ends at byte \d+ but the file has 2000000 bytes/);
    // Cut inside the tokenizer metadata: the parser would read zeros past the end; we must notice.
    truncateSync(f, 300_000);
    expect((await badInput(inspectModel(f))).message).toMatch(/truncated|corrupt/);
  });

  it("a corrupt header is reported, not crashed on", async () => {
    const f = join(dir, "corrupt.gguf");
    const bytes = readFileSync(join(dir, "a.gguf"));
    bytes.writeBigUInt64LE(2n ** 62n, 16); // kv count
    writeFileSync(f, bytes);
    expect((await badInput(inspectModel(f))).message).toMatch(/corrupt or truncated GGUF header/);
  });

  it("a directory is not a model", async () => {
    const d = join(dir, "model-dir");
    mkdirSync(d, { recursive: true });
    expect((await badInput(inspectModel(d))).message).toMatch(/directory/);
  });

  it("a non-llama architecture is named; a real (non-synthetic) model bans no tokens", async () => {
    const vocab = await loadVocab("llama-spm");
    const write = (arch: string, f: string) =>
      writeGgufFile(f, {
        metadata: { "general.architecture": kv.str(arch), [`${arch}.block_count`]: kv.u32(1), ...vocab.tokenizer },
        tensors: [{ name: "output_norm.weight", shape: [64], typeId: 0, data: [new Uint8Array(256)] }],
      });
    const qwen = join(dir, "qwen.gguf");
    await write("qwen2", qwen);
    const e = await badInput(inspectModel(qwen));
    expect(e.message).toContain('architecture "qwen2"');
    expect((await inspectModel(qwen, { anyArchitecture: true, hash: false })).architecture).toBe("qwen2");

    const real = join(dir, "real.gguf");
    await write("llama", real);
    const info = await inspectModel(real, { hash: false });
    expect(info.synthetic).toBe(false);
    expect(info.bannedTokenIds).toEqual([]);
    expect(info.vocab).toBe("llama");
    expect(info.shape.vocab).toBe(32000);
  });
});

describe("ensureDefaultModel", () => {
  it("synthesizes tiny f16 once into the cache, with the format version in its name, and reuses it", async () => {
    const cache = mkdtempSync(join(tmpdir(), "tokengate-cache-"));
    const saved = process.env.TOKENGATE_CACHE_DIR;
    process.env.TOKENGATE_CACHE_DIR = cache;
    try {
      const [a, b] = await Promise.all([ensureDefaultModel(), ensureDefaultModel()]); // concurrent callers
      expect(a).toBe(b);
      expect(a).toBe(defaultModelPath());
      expect(a.startsWith(join(cache, "models"))).toBe(true);
      expect(a).toContain(`-v${SYNTH_FORMAT_VERSION}`);
      const info = await inspectModel(a);
      expect(info).toMatchObject({ quantization: "f16", synthetic: true, shape: { layers: 2, embedding: 64 } });
      const mtime = statSync(a).mtimeMs;
      const again = await ensureDefaultModel();
      expect(again).toBe(a);
      expect(statSync(again).mtimeMs).toBe(mtime); // reused, not rewritten
      expect((await inspectModel(again)).sha256).toBe(info.sha256);
    } finally {
      if (saved === undefined) delete process.env.TOKENGATE_CACHE_DIR;
      else process.env.TOKENGATE_CACHE_DIR = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  });
});

describe("--layers override", () => {
  it("writes the preset's shape with another depth, named so it cannot pass for the preset", async () => {
    const { synthesizeModel } = await import("../../src/model/synth.js");
    const { inspectModel } = await import("../../src/model/inspect.js");
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const out = join(mkdtempSync(join(tmpdir(), "tg-layers-")), "tiny-l3.gguf");
    await synthesizeModel({ preset: "tiny", layers: 3, out, quiet: true });
    const info = await inspectModel(out, { hash: false });
    expect(info.shape?.layers).toBe(3);
    await expect(synthesizeModel({ preset: "tiny", layers: 0, out, quiet: true })).rejects.toThrow(/from 1 to 512/);
  });
});
