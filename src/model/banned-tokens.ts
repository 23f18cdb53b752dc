/**
 * Which tokens a load generator should ban (logit_bias) when it drives a model with random weights.
 *
 * Random weights pick tokens uniformly-ish, including tokens that are only a fragment of a UTF-8 character. llama-server
 * then fails the request with HTTP 500 "The model produced output that does not match the expected Content-only format"
 * (FACTS.md: ~7-9% of requests with llama-spm; measured here ~30-40% with the byte-level BPE vocabularies, whose tokens
 * are raw bytes). A trained model emits such fragments only in valid sequences, so banning them keeps the synthetic
 * model's behaviour close to a real one without changing the cost per token.
 *
 * - SentencePiece vocabularies (llama-spm, phi-3, ...): the byte-fallback tokens `<0x00>`..`<0xFF>` (token type BYTE).
 * - Byte-level BPE vocabularies (`tokenizer.ggml.model` = gpt2: llama-bpe, qwen2, gpt-2, ...): tokens whose bytes are
 *   not valid UTF-8 on their own (a lone lead byte, a continuation byte, a character cut in half).
 */

/** `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** GPT-2's reversible byte <-> printable character map (`bytes_to_unicode` in its encoder.py), character -> byte. */
function gpt2CharToByte(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map = new Map<string, number>();
  for (const b of printable) map.set(String.fromCodePoint(b), b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) map.set(String.fromCodePoint(256 + n++), b);
  }
  return map;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export interface TokenizerView {
  model?: unknown;
  tokens?: unknown;
  tokenTypes?: unknown;
}

/** Token ids that are not whole UTF-8 text on their own (see the file comment), ascending. */
export function partialUtf8TokenIds(t: TokenizerView): number[] {
  const types = Array.isArray(t.tokenTypes) ? t.tokenTypes : [];
  const tokens = Array.isArray(t.tokens) ? t.tokens : [];
  const banned: number[] = [];
  const charToByte = t.model === "gpt2" ? gpt2CharToByte() : undefined;
  const n = Math.max(types.length, tokens.length);
  for (let id = 0; id < n; id++) {
    const type = Number(types[id] ?? TokenType.NORMAL);
    if (type === TokenType.BYTE) {
      banned.push(id);
      continue;
    }
    if (!charToByte || type !== TokenType.NORMAL) continue;
    const text = tokens[id];
    if (typeof text !== "string") continue;
    const bytes: number[] = [];
    let mapped = true;
    for (const ch of text) {
      const b = charToByte.get(ch);
      if (b === undefined) {
        mapped = false; // not byte-level encoded (an added token stored as plain text): whole text by definition
        break;
      }
      bytes.push(b);
    }
    if (mapped && !isValidUtf8(Uint8Array.from(bytes))) banned.push(id);
  }
  return banned;
}
