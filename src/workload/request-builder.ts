import type { ApiKind, Endpoint } from "../target/types.js";

/** What one request asks for, independent of the API shape it is sent in. */
export interface GenerationRequest {
  api: ApiKind;
  prompt: string;
  /** Fixed output length: max tokens, with `ignore_eos` so the server produces exactly this many. */
  maxTokens: number;
  ignoreEos: boolean;
  temperature: number;
  seed?: number;
  /** false = ask llama-server not to reuse its prompt cache, for clean TTFT. */
  cachePrompt: boolean;
  /** Extra fields the user configured, merged last (requests to real models go as the user configured them). */
  extraBody?: Record<string, unknown>;
}

export interface HttpRequestSpec {
  path: string;
  body: Record<string, unknown>;
}

/**
 * Builds the HTTP body for one API. Banned tokens (lone byte tokens of synthetic models, shared/FACTS.md) go in the
 * shape each API wants: `[[id,false],...]` on llama-server's /completion, `{"id": -100}` on the OpenAI endpoints.
 */
export function buildRequest(req: GenerationRequest, endpoint: Endpoint): HttpRequestSpec {
  const banned = endpoint.bannedTokenIds;
  const common = {
    stream: true,
    temperature: req.temperature,
    ...(req.seed === undefined ? {} : { seed: req.seed }),
    ...(req.ignoreEos ? { ignore_eos: true } : {}),
    cache_prompt: req.cachePrompt,
  };
  if (req.api === "completion") {
    return {
      path: "/completion",
      body: {
        prompt: req.prompt,
        n_predict: req.maxTokens,
        ...common,
        ...(banned.length ? { logit_bias: banned.map((id) => [id, false]) } : {}),
        ...req.extraBody,
      },
    };
  }
  const openai = {
    model: endpoint.modelName,
    max_tokens: req.maxTokens,
    stream_options: { include_usage: true },
    ...common,
    ...(banned.length ? { logit_bias: Object.fromEntries(banned.map((id) => [String(id), -100])) } : {}),
  };
  if (req.api === "openai-completions") {
    return { path: "/v1/completions", body: { prompt: req.prompt, ...openai, ...req.extraBody } };
  }
  return {
    path: "/v1/chat/completions",
    body: { messages: [{ role: "user", content: req.prompt }], ...openai, ...req.extraBody },
  };
}
