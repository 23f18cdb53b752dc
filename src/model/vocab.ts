import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { llamaSource } from "../target/llama-build.js";
import { cacheDir } from "../util/cache-dir.js";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { runCommand } from "../util/run-command.js";
import { type GgufKv, GgufType } from "./gguf-writer.js";

/**
 * Real tokenizers for synthetic models. llama.cpp's source (shipped by node-llama-cpp as a git bundle) carries
 * vocab-only GGUF files, `models/ggml-vocab-*.gguf`, used by its tokenizer tests. We copy every `tokenizer.*` key of
 * one of them into the synthetic model, so prompts tokenize exactly as with the real model family.
 *
 * Each file is extracted once from the bundle with git into `<cache>/vocab/<llama.cpp tag>/`.
 */

/**
 * Vocabularies that load and generate with the llama architecture: each was synthesized as tiny, loaded by
 * llama-server and node-llama-cpp, and served 30 /completion + 30 /v1/chat/completions requests with exact token counts
 * and no failures once its partial-UTF-8 tokens were banned (banned-tokens.ts). Left out: gemma-4 (llama.cpp aborts on
 * its duplicate tokens: `GGML_ASSERT(id_to_token.size() == token_to_id.size())`), bert-bge and nomic-bert-moe
 * (WordPiece encoder vocabularies: they load, but nobody benchmarks generation with them).
 */
export const VOCAB_NAMES = [
  "llama-spm",
  "llama-bpe",
  "qwen2",
  "qwen35",
  "gpt-2",
  "phi-3",
  "mpt",
  "falcon",
  "starcoder",
  "refact",
  "gpt-neox",
  "deepseek-llm",
  "deepseek-coder",
  "command-r",
  "baichuan",
  "aquila",
] as const;
export type VocabName = (typeof VOCAB_NAMES)[number];
export const DEFAULT_VOCAB: VocabName = "llama-spm";

/**
 * Llama-2-chat's template (meta-llama/Llama-2-7b-chat-hf), added when a vocabulary has none so that
 * `/v1/chat/completions` works. llama.cpp strips the leading BOS it renders, since it adds BOS itself.
 */
export const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

export interface Vocab {
  name: VocabName;
  file: string;
  size: number;
  /** Every `tokenizer.*` key of the vocab file, plus `tokenizer.chat_template` when it had none. */
  tokenizer: Record<string, GgufKv>;
}

export function isVocabName(name: string): name is VocabName {
  return (VOCAB_NAMES as readonly string[]).includes(name);
}

export function vocabFileName(name: VocabName): string {
  return `ggml-vocab-${name}.gguf`;
}

/** Path of the vocab file, extracting it from node-llama-cpp's llama.cpp bundle on first use. */
export async function vocabFile(name: VocabName): Promise<string> {
  // A folder of vocab files given explicitly (machines without node-llama-cpp, e.g. the GPU runner where only the
  // bundled CLI travels; shared/gpu/pack.sh carries them as $VOCAB_DIR).
  const given = process.env.TOKENGATE_VOCAB_DIR;
  if (given) {
    const file = join(given, vocabFileName(name));
    if (!existsSync(file)) {
      throw new BadInputError(`no ${vocabFileName(name)} in TOKENGATE_VOCAB_DIR`, {
        subject: given,
        hint: "copy the vocab files from llama.cpp's models/ folder there, or unset TOKENGATE_VOCAB_DIR",
      });
    }
    return file;
  }
  const source = llamaSource();
  const dir = cacheDir("vocab", source.tag);
  const file = join(dir, vocabFileName(name));
  if (existsSync(file)) return file;
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, ".extract-"));
  try {
    const repo = join(work, "repo");
    const tree = join(work, "tree");
    await mkdir(tree);
    const inBundle = `models/${vocabFileName(name)}`;
    // A bare repository and a separate work tree: only the one file is written out, no 35 MB checkout.
    await git(["init", "-q", "--bare", repo]);
    await git(["-C", repo, "fetch", "-q", source.bundle, "HEAD"]);
    await git(["--git-dir", repo, "--work-tree", tree, "checkout", "FETCH_HEAD", "--", inBundle]);
    // Unique temp name, then an atomic rename: concurrent extractions write identical bytes, the last rename wins.
    const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
    await rename(join(tree, inBundle), tmp);
    await rename(tmp, file);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return file;
}

async function git(args: string[]): Promise<void> {
  const r = await runCommand("git", args, { env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
  if (r.code !== 0) {
    throw new CouldNotRunError(
      `extracting a tokenizer from llama.cpp's source bundle failed (git ${args[0] === "-C" ? args[2] : args[0]} exited ${r.code})`,
      {
        subject: "git",
        hint: `git output: ${r.tail.slice(-5).join(" | ")}`,
      },
    );
  }
}

const loaded = new Map<VocabName, Promise<Vocab>>();

/** Loads a vocabulary (cached per process). Throws BadInputError naming `--vocab` for an unknown name. */
export function loadVocab(name: string): Promise<Vocab> {
  if (!isVocabName(name)) {
    throw new BadInputError(`unknown vocabulary "${name}"; valid: ${VOCAB_NAMES.join(", ")}`, {
      subject: "--vocab",
      hint: `--vocab ${DEFAULT_VOCAB} (Llama-2's SentencePiece tokenizer, the default)`,
    });
  }
  let p = loaded.get(name);
  if (!p) {
    p = readVocab(name);
    loaded.set(name, p);
    p.catch(() => loaded.delete(name));
  }
  return p;
}

async function readVocab(name: VocabName): Promise<Vocab> {
  const file = await vocabFile(name);
  const parsed = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const tokenizer: Record<string, GgufKv> = {};
  for (const [key, entry] of Object.entries(parsed.typedMetadata)) {
    if (!key.startsWith("tokenizer.")) continue;
    const e = entry as GgufKv;
    tokenizer[key] =
      e.subType === undefined ? { type: e.type, value: e.value } : { type: e.type, value: e.value, subType: e.subType };
  }
  const tokens = tokenizer["tokenizer.ggml.tokens"]?.value;
  if (!Array.isArray(tokens) || tokens.length === 0) {
    throw new CouldNotRunError(`vocab file has no tokenizer.ggml.tokens`, { subject: file });
  }
  if (!tokenizer["tokenizer.chat_template"]) {
    tokenizer["tokenizer.chat_template"] = { type: GgufType.STRING, value: LLAMA2_CHAT_TEMPLATE };
  }
  return { name, file, size: tokens.length, tokenizer };
}
