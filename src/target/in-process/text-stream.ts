/**
 * Turns generated tokens into text pieces for streaming, with stop strings. Pure: the detokenizer is passed in.
 *
 * Two surprises handled here:
 * - One character can span several tokens (llama-spm's byte tokens `<0xE4><0xBD><0xA0>` are "你"). node-llama-cpp's
 *   detokenize turns an incomplete UTF-8 sequence into U+FFFD, so a piece that ends in U+FFFD is held back until the
 *   character completes (at most `MAX_HELD_TOKENS` tokens; a model that emits broken UTF-8 gets its U+FFFD).
 * - SentencePiece drops the leading space of the first token it detokenizes unless it is given the preceding tokens,
 *   so every call passes the last few tokens as context (node-llama-cpp's `lastTokens`).
 *
 * Stop strings: text that could still become a stop string is held back; when one appears, the text before it is
 * emitted and generation stops (the stop string itself is not returned, as OpenAI and llama-server do).
 */
export type Detokenize = (tokens: readonly number[], lastTokens: readonly number[]) => string;

const MAX_HELD_TOKENS = 4;
const CONTEXT_TOKENS = 8;
const REPLACEMENT = "\uFFFD";

export interface PushResult {
  /** Text to send now (may be empty). */
  text: string;
  /** A stop string was found: send `text`, then finish with `stop`. */
  stopped: boolean;
}

export class TextAssembler {
  private pendingTokens: number[] = [];
  private context: number[];
  /** Decoded text not yet emitted because it may be the start of a stop string. */
  private held = "";
  private emitted = "";
  private done = false;

  constructor(
    private readonly detokenize: Detokenize,
    private readonly stop: readonly string[],
    /** The prompt's last tokens, so the first generated token keeps its leading space. */
    promptTail: readonly number[] = [],
  ) {
    this.context = promptTail.slice(-CONTEXT_TOKENS);
  }

  /** All text emitted so far (the non-streaming response). */
  get text(): string {
    return this.emitted;
  }

  push(token: number): PushResult {
    if (this.done) return { text: "", stopped: true };
    this.pendingTokens.push(token);
    const decoded = this.detokenize(this.pendingTokens, this.context);
    if (decoded.endsWith(REPLACEMENT) && this.pendingTokens.length < MAX_HELD_TOKENS)
      return { text: "", stopped: false };
    this.context = [...this.context, ...this.pendingTokens].slice(-CONTEXT_TOKENS);
    this.pendingTokens = [];
    return this.take(decoded, false);
  }

  /** At the end of generation: everything still held. */
  flush(): string {
    if (this.done) return "";
    const decoded = this.pendingTokens.length > 0 ? this.detokenize(this.pendingTokens, this.context) : "";
    this.pendingTokens = [];
    const r = this.take(decoded, true);
    this.done = true;
    return r.text;
  }

  private take(decoded: string, final: boolean): PushResult {
    const all = this.held + decoded;
    let cut = -1;
    for (const s of this.stop) {
      const i = all.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.done = true;
      this.held = "";
      return this.emit(all.slice(0, cut), true);
    }
    const keep = final ? 0 : partialStopSuffix(all, this.stop);
    this.held = all.slice(all.length - keep);
    return this.emit(all.slice(0, all.length - keep), false);
  }

  private emit(text: string, stopped: boolean): PushResult {
    this.emitted += text;
    return { text, stopped };
  }
}

/** Length of the longest end of `text` that is the beginning of some stop string (so it must be held back). */
export function partialStopSuffix(text: string, stop: readonly string[]): number {
  let best = 0;
  for (const s of stop) {
    for (let len = Math.min(s.length - 1, text.length); len > best; len--) {
      if (text.endsWith(s.slice(0, len))) {
        best = len;
        break;
      }
    }
  }
  return best;
}
