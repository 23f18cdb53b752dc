import { basename } from "node:path";
import {
  type ChatHistoryItem,
  type ChatWrapper,
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
  type Token,
  TokenBias,
} from "node-llama-cpp";
import type { FinishReason, PromptInput } from "./openai.js";
import { makeTimings, RequestError } from "./openai.js";
import type { ServerConfig } from "./options.js";
import type { BatchGate, GenerationJob, GenerationResult, GenerationSink } from "./scheduler.js";
import { TextAssembler } from "./text-stream.js";

/**
 * The model side of the in-process server: one node-llama-cpp model and one context with `sequences` sequences, so
 * concurrent requests are evaluated together in one batch. Runs only in the forked child (child.ts).
 *
 * Generation is token by token with `LlamaContextSequence.evaluate`, not LlamaCompletion/LlamaChat: a benchmark needs
 * exact token counts (`ignore_eos` must give exactly `max_tokens` tokens; those classes stop on end tokens and on the
 * chat wrapper's own triggers, and count text, not tokens).
 */
export interface Engine {
  modelName: string;
  /** Per sequence, as created (node-llama-cpp may round up). */
  contextSize: number;
  threads: number;
  vocabSize: number;
  sequences: LlamaContextSequence[];
  tokenize(prompt: PromptInput): number[];
  /** How many prompt tokens a sequence could reuse from its KV cache (prefers warm sequences). */
  reusablePrefix(sequence: LlamaContextSequence, job: GenerationJob): number;
  execute(
    sequence: LlamaContextSequence,
    job: GenerationJob,
    sink: GenerationSink,
    signal: AbortSignal,
  ): Promise<GenerationResult>;
  dispose(): Promise<void>;
}

export interface EngineOptions {
  /** Holds batches (the seed's request batching); undefined = node-llama-cpp's next-cycle dispatch. */
  gate?: BatchGate;
  /** llama.cpp's log lines (warnings and errors). */
  log?: (line: string) => void;
}

const LEVELS_SHOWN = new Set<LlamaLogLevel>([LlamaLogLevel.error, LlamaLogLevel.warn, LlamaLogLevel.fatal]);

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function vocabularySize(model: LlamaModel): number {
  const tokens = (model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: unknown[] } } }).tokenizer
    ?.ggml?.tokens;
  if (Array.isArray(tokens) && tokens.length > 0) return tokens.length;
  let n = 0;
  for (const _ of model.iterateAllTokens()) n++;
  return n;
}

export async function loadEngine(config: ServerConfig, opts: EngineOptions = {}): Promise<Engine> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Prebuilt CPU binaries load offline; never build or download here (shared/FACTS.md). maxThreads is set to the
  // threads we want: node-llama-cpp's default, max(cores, 4), oversubscribes a 2-core machine ~250x slower.
  const llama: Llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    maxThreads: config.threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      if (LEVELS_SHOWN.has(level)) log(`[llama.cpp ${level}] ${message.trimEnd()}`);
    },
  });
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  try {
    model = await llama.loadModel({ modelPath: config.modelPath });
    context = await model.createContext({
      sequences: config.sequences,
      contextSize: config.contextSize,
      threads: config.threads,
      failedCreationRemedy: false,
      batching: {
        dispatchSchedule: opts.gate?.schedule ?? "nextCycle",
        itemPrioritizationStrategy: "maximumParallelism",
      },
    });
  } catch (err) {
    await llama.dispose().catch(() => {});
    throw err;
  }
  const sequences = Array.from({ length: config.sequences }, () => context.getSequence());
  const vocabSize = vocabularySize(model);
  return new NodeLlamaEngine(llama, model, context, sequences, config, vocabSize, opts.gate);
}

class NodeLlamaEngine implements Engine {
  readonly modelName: string;
  readonly contextSize: number;
  readonly threads: number;
  private readonly chatWrapper: ChatWrapper;
  /** Sequences being cleared for new requests; running generations wait for these (see `admit`). */
  private readonly admissions = new Set<Promise<void>>();

  constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly sequences: LlamaContextSequence[],
    config: ServerConfig,
    readonly vocabSize: number,
    private readonly gate: BatchGate | undefined,
  ) {
    this.modelName = basename(config.modelPath);
    this.contextSize = context.contextSize;
    this.threads = context.idealThreads;
    // The model's own chat template (tokenizer.chat_template, through node-llama-cpp's Jinja wrapper) when it has one,
    // like llama-server; otherwise node-llama-cpp's best guess for the architecture.
    this.chatWrapper = resolveChatWrapper(model);
  }

  tokenize(prompt: PromptInput): number[] {
    switch (prompt.kind) {
      case "tokens":
        return [...prompt.tokens];
      case "text": {
        // llama-server tokenizes completion prompts with special tokens parsed and BOS added; do the same.
        const tokens = this.model.tokenize(prompt.text, true) as number[];
        const bos = this.model.tokens.bos;
        if (this.model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
        return tokens;
      }
      case "chat": {
        const history: ChatHistoryItem[] = prompt.messages.map((m) =>
          m.role === "user"
            ? { type: "user", text: m.content }
            : m.role === "system"
              ? { type: "system", text: m.content }
              : { type: "model", response: [m.content] },
        );
        // An empty model turn at the end renders the "assistant speaks next" prompt; a trailing assistant message is
        // continued instead.
        if (prompt.messages.at(-1)?.role !== "assistant") history.push({ type: "model", response: [] });
        let rendered: ReturnType<ChatWrapper["generateContextState"]>;
        try {
          rendered = this.chatWrapper.generateContextState({ chatHistory: history });
        } catch (err) {
          throw new RequestError(`the model's chat template failed: ${(err as Error).message}`, 400, "messages");
        }
        return rendered.contextText.tokenize(this.model.tokenizer) as number[];
      }
    }
  }

  reusablePrefix(sequence: LlamaContextSequence, job: GenerationJob): number {
    return commonPrefix(sequence.contextTokens, job.promptTokens);
  }

  async execute(
    sequence: LlamaContextSequence,
    job: GenerationJob,
    sink: GenerationSink,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    const prompt = job.promptTokens;
    const p = job.params;
    // Reuse the KV cache of the common prefix (llama-server's cache_prompt). At least one prompt token is evaluated
    // again: the first generated token needs logits.
    const wanted = job.cachePrompt ? Math.min(this.reusablePrefix(sequence, job), prompt.length - 1) : 0;
    const reused = await this.admit(sequence, prompt, wanted);
    signal.throwIfAborted();

    let tokenBias: TokenBias | undefined;
    if (p.logitBias.length > 0) {
      tokenBias = new TokenBias(this.model.tokenizer);
      // Note: node-llama-cpp's TokenBias ignores biases on end-of-generation tokens (its documented behaviour).
      for (const [id, bias] of p.logitBias)
        tokenBias.set(id as Token, Number.isFinite(bias) ? { logit: bias } : "never");
    }
    const limit = p.maxTokens ?? Math.max(1, this.contextSize - prompt.length);
    const text = new TextAssembler(
      (tokens, last) => this.model.detokenize(tokens as Token[], false, last as Token[]),
      p.stop,
      prompt,
    );
    const evaluated = prompt.slice(reused);
    const iterator = sequence.evaluate(evaluated as Token[], {
      temperature: p.temperature,
      topK: p.topK,
      topP: p.topP,
      minP: p.minP,
      ...(p.seed !== undefined ? { seed: p.seed } : {}),
      ...(tokenBias ? { tokenBias } : {}),
      // With ignore_eos, end tokens are yielded and generation goes on, so exactly `limit` tokens come out and each
      // counts. (llama-server bans them instead; node-llama-cpp's TokenBias cannot ban end tokens.)
      yieldEogToken: p.ignoreEos,
    });

    const startedMs = performance.now();
    let firstMs: number | undefined;
    let lastMs = startedMs;
    let count = 0;
    let finishReason: FinishReason = "length";
    this.gate?.promptQueued();
    try {
      while (count < limit) {
        // A new request is clearing its sequence: stop queueing tokens so node-llama-cpp's batch loop can end and
        // hand over its lock (see `admit`); resume right after, in the same batch as the new prompt.
        while (this.admissions.size > 0) await Promise.allSettled([...this.admissions]);
        const next = await iterator.next();
        if (next.done) {
          finishReason = "stop";
          break;
        }
        count++;
        lastMs = performance.now();
        firstMs ??= lastMs;
        const piece = text.push(next.value);
        if (piece.text !== "") sink.onText(piece.text);
        if (piece.stopped) {
          finishReason = "stop";
          break;
        }
        signal.throwIfAborted();
      }
      const rest = text.flush();
      if (rest !== "") sink.onText(rest);
    } finally {
      await iterator.return();
    }
    const first = firstMs ?? lastMs;
    return {
      text: text.text,
      finishReason,
      promptTokens: prompt.length,
      completionTokens: count,
      cachedTokens: reused,
      // llama-server's definitions: prompt time ends when the first token is sampled; predicted time runs from the
      // first to the last token while predicted_n counts all of them.
      timings: makeTimings({
        cacheN: reused,
        promptN: evaluated.length,
        promptMs: first - startedMs,
        predictedN: count,
        predictedMs: lastMs - first,
      }),
      fromCache: false,
    };
  }

  /**
   * Empties `sequence` down to its first `keep` tokens (the reused prompt prefix) for a new request; returns how many
   * tokens were kept.
   *
   * Surprise in node-llama-cpp 3.21.1: erasing tokens takes the context lock, and its batch loop keeps that lock for
   * as long as decodes are queued when a batch ends. With two or more generations running, one of them has always
   * queued its next token by then (their samplings finish at different times), so a new request could not clear its
   * sequence until every running generation had finished (measured: 10-17 s, thousands of tokens). Admission turned
   * serial. So while a sequence is being cleared, running generations hold back their next token (`admissions`):
   * the queue drains, the loop ends, the erase gets the lock, and everyone continues in the next batch. The pause is
   * at most one decode step.
   */
  private async admit(sequence: LlamaContextSequence, prompt: readonly number[], keep: number): Promise<number> {
    if (sequence.nextTokenIndex === 0 || (keep > 0 && sequence.nextTokenIndex === keep)) return keep;
    const erase = (async () => {
      if (keep > 0) await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
      else await sequence.clearHistory();
    })();
    this.admissions.add(erase);
    try {
      await erase;
    } finally {
      this.admissions.delete(erase);
    }
    if (keep === 0) return 0;
    // Erasing may be refused for part of a range (models whose cache cannot be cut): trust what is left.
    const kept = commonPrefix(sequence.contextTokens, prompt);
    if (kept < prompt.length) return kept;
    await this.admit(sequence, prompt, 0);
    return 0;
  }

  async dispose(): Promise<void> {
    await this.context.dispose().catch(() => {});
    await this.model.dispose().catch(() => {});
    await this.llama.dispose().catch(() => {});
  }
}
