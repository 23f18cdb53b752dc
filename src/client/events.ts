import type { ServerTimings, TokenCountSource } from "../measure/record.js";
import type { ApiKind } from "../target/types.js";

/** What one SSE event of a streaming LLM response tells us, independent of the API shape. */
export interface StreamEventInfo {
  /** Carries generated text (or a generated token), i.e. counts for TTFT and ITL. */
  content: boolean;
  /** The stream's end marker: llama-server's `stop:true` on /completion, `[DONE]` on the OpenAI endpoints. */
  final: boolean;
  /** A finish_reason or usage chunk: the generation finished even if a server omits `[DONE]`. */
  finished?: boolean;
  error?: string;
  completionTokens?: number;
  promptTokens?: number;
  promptTokensSource?: TokenCountSource;
  cachedTokens?: number;
  tokensPredicted?: number;
  timings?: ServerTimings;
}

interface CompletionEvent {
  content?: string;
  tokens?: number[];
  stop?: boolean;
  tokens_predicted?: number;
  tokens_evaluated?: number;
  timings?: ServerTimings;
  error?: unknown;
}

interface OpenAiEvent {
  choices?: Array<{
    text?: string | null;
    delta?: { content?: string | null; reasoning_content?: string | null };
    finish_reason?: string | null;
  }>;
  usage?: { completion_tokens?: number; prompt_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } };
  timings?: ServerTimings;
  error?: unknown;
}

function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error && typeof error === "object" && "message" in error) return String((error as { message: unknown }).message);
  return JSON.stringify(error);
}

/**
 * Interprets one `data:` payload. Throws SyntaxError on invalid JSON (a `parse` error for the request).
 * An `error` object in the middle of a stream (llama-server does this when the model emits invalid UTF-8) makes the
 * request fail, even after some content arrived.
 */
export function interpretEvent(api: ApiKind, data: string): StreamEventInfo {
  if (data === "[DONE]") return { content: false, final: true };
  const json = JSON.parse(data) as unknown;
  if (!json || typeof json !== "object") throw new SyntaxError(`event is not a JSON object: ${data.slice(0, 80)}`);
  if ("error" in json && (json as { error: unknown }).error) {
    return { content: false, final: true, error: errorText((json as { error: unknown }).error) };
  }
  if (api === "completion") {
    const e = json as CompletionEvent;
    const hasToken = (e.content !== undefined && e.content !== "") || (e.tokens?.length ?? 0) > 0;
    return {
      content: hasToken && !e.stop,
      final: e.stop === true,
      tokensPredicted: e.tokens_predicted,
      timings: e.timings,
      // prompt_n counts only tokens evaluated now; cache_n those reused from the prompt cache.
      ...(e.timings
        ? { promptTokens: (e.timings.prompt_n ?? 0) + (e.timings.cache_n ?? 0), promptTokensSource: "timings" as const }
        : e.tokens_evaluated !== undefined
          ? { promptTokens: e.tokens_evaluated, promptTokensSource: "tokens_predicted" as const }
          : {}),
      cachedTokens: e.timings?.cache_n,
    };
  }
  const e = json as OpenAiEvent;
  const choice = e.choices?.[0];
  const text = api === "openai-chat" ? (choice?.delta?.content ?? choice?.delta?.reasoning_content) : choice?.text;
  return {
    content: typeof text === "string" && text.length > 0,
    final: false,
    finished: Boolean(choice?.finish_reason) || Boolean(e.usage),
    completionTokens: e.usage?.completion_tokens,
    ...(e.usage?.prompt_tokens !== undefined
      ? { promptTokens: e.usage.prompt_tokens, promptTokensSource: "usage" as const }
      : e.timings
        ? { promptTokens: (e.timings.prompt_n ?? 0) + (e.timings.cache_n ?? 0), promptTokensSource: "timings" as const }
        : {}),
    cachedTokens: e.usage?.prompt_tokens_details?.cached_tokens ?? e.timings?.cache_n,
    timings: e.timings,
  };
}
