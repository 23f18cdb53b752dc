import { describe, expect, it } from "vitest";
import { partialUtf8TokenIds, TokenType } from "../../src/model/banned-tokens.js";
import { loadVocab } from "../../src/model/vocab.js";

const { NORMAL, CONTROL, USER_DEFINED, BYTE } = TokenType;

describe("tokens banned for synthetic models", () => {
  it("SentencePiece: exactly the byte-fallback tokens", () => {
    const ids = partialUtf8TokenIds({
      model: "llama",
      tokens: ["<unk>", "<s>", "</s>", "<0x00>", "<0xE4>", "▁the", "é"],
      tokenTypes: [2, CONTROL, CONTROL, BYTE, BYTE, NORMAL, NORMAL],
    });
    expect(ids).toEqual([3, 4]);
  });

  it("byte-level BPE: tokens that are not valid UTF-8 on their own, never control or added tokens", () => {
    const ids = partialUtf8TokenIds({
      model: "gpt2",
      tokens: [
        "Ġthe", // " the"
        "Ã", // 0xC3: a lead byte alone
        "Ã©", // 0xC3 0xA9: "é", whole
        "©", // 0xA9: a continuation byte alone
        "<|endoftext|>", // control, stored as text
        "<tool_call>", // added token: plain text, not byte-encoded
        "ĊĊ", // "\n\n"
        "æĸ", // 0xE6 0x96: two of the three bytes of a CJK character
      ],
      tokenTypes: [NORMAL, NORMAL, NORMAL, NORMAL, CONTROL, USER_DEFINED, NORMAL, NORMAL],
    });
    expect(ids).toEqual([1, 3, 7]);
  });

  it("finds the partial tokens of a real byte-level BPE vocabulary (llama-bpe, Llama 3's)", async () => {
    const vocab = await loadVocab("llama-bpe");
    const tokens = vocab.tokenizer["tokenizer.ggml.tokens"]?.value as string[];
    const ids = partialUtf8TokenIds({
      model: vocab.tokenizer["tokenizer.ggml.model"]?.value,
      tokens,
      tokenTypes: vocab.tokenizer["tokenizer.ggml.token_type"]?.value,
    });
    // A few hundred to a few thousand of 128256: the lone bytes 0x80-0xFF plus cut multi-byte characters.
    expect(ids.length).toBeGreaterThan(128);
    expect(ids.length).toBeLessThan(5000);
    expect(ids).not.toContain(tokens.indexOf("Ġthe"));
    expect(ids).toContain(tokens.indexOf("Ã"));
  });
});
