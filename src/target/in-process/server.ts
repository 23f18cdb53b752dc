import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  errorBody,
  finishChunk,
  fullResponse,
  makeUsage,
  type OpenAiApi,
  type ParsedRequest,
  type PromptInput,
  parseRequest,
  RequestError,
  type ResponseMeta,
  roleChunk,
  textChunk,
  usageChunk,
} from "./openai.js";
import type { GenerationResult, Scheduler } from "./scheduler.js";

/**
 * The in-process target's HTTP server: a small OpenAI-compatible API over a Scheduler, shaped like llama-server's so
 * tokengate's client measures both the same way.
 *
 * GET  /health                 {"status":"ok"} once the model is loaded, 503 before (like llama-server)
 * GET  /v1/models              the one model
 * GET  /tokengate/stats        scheduler counters (requests, model runs, cache hits, active, queued)
 * POST /v1/chat/completions    streaming (SSE) and not
 * POST /v1/completions         streaming (SSE) and not
 *
 * A client that disconnects aborts its generation (or its place in the queue).
 */
export interface ServingModel {
  scheduler: Scheduler;
  tokenize(prompt: PromptInput): number[];
  modelName: string;
  contextSize: number;
  vocabSize: number;
  /** `system_fingerprint` in every response: node-llama-cpp and llama.cpp versions. */
  systemFingerprint: string;
  /** Extra fields for /tokengate/stats (threads, options). */
  describe(): Record<string, unknown>;
}

/** The server starts before the model has loaded (so /health can say 503); `model` is set once it has. */
export interface ServerState {
  model: ServingModel | undefined;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

const ROUTES: Record<string, { method: "GET" | "POST"; api?: OpenAiApi }> = {
  "/health": { method: "GET" },
  "/v1/models": { method: "GET" },
  "/tokengate/stats": { method: "GET" },
  "/v1/chat/completions": { method: "POST", api: "chat" },
  "/chat/completions": { method: "POST", api: "chat" },
  "/v1/completions": { method: "POST", api: "completions" },
  "/completions": { method: "POST", api: "completions" },
};

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, message: string, type?: string, param?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, errorBody(status, message, type, param));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestError(`request body larger than ${MAX_BODY_BYTES} bytes`, 413));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export function createInProcessServer(state: ServerState): Server {
  const server = createServer((req, res) => {
    handle(state, req, res).catch((err: unknown) => {
      if (err instanceof RequestError) sendError(res, err.status, err.message, err.type, err.param);
      else sendError(res, 500, (err as Error)?.message ?? String(err), "server_error");
    });
  });
  // Benchmarks keep connections open between requests; Node's 5 s default keep-alive would close idle ones mid-run.
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(state: ServerState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
  const route = ROUTES[path];
  if (route === undefined) {
    sendError(res, 404, `no route ${path}`, "not_found_error");
    return;
  }
  if (req.method !== route.method) {
    res.setHeader("allow", route.method);
    sendError(res, 405, `${path} takes ${route.method}`, "invalid_request_error");
    return;
  }
  const model = state.model;
  if (model === undefined) {
    sendError(res, 503, "Loading model", "unavailable_error");
    return;
  }
  switch (path) {
    case "/health":
      sendJson(res, 200, { status: "ok" });
      return;
    case "/v1/models":
      sendJson(res, 200, {
        object: "list",
        data: [
          {
            id: model.modelName,
            object: "model",
            created: Math.floor(Date.now() / 1000),
            owned_by: "tokengate",
            meta: { n_ctx: model.contextSize, n_vocab: model.vocabSize },
          },
        ],
      });
      return;
    case "/tokengate/stats":
      sendJson(res, 200, { ...model.scheduler.stats(), ...model.describe() });
      return;
  }
  const raw = await readBody(req);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw new RequestError(`the request body is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = parseRequest(route.api!, body, { vocabSize: model.vocabSize });
  await generate(model, parsed, res);
}

function responseMeta(model: ServingModel, api: OpenAiApi): ResponseMeta {
  return {
    api,
    id: `${api === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`,
    created: Math.floor(Date.now() / 1000),
    model: model.modelName,
    systemFingerprint: model.systemFingerprint,
  };
}

async function generate(model: ServingModel, request: ParsedRequest, res: ServerResponse): Promise<void> {
  const promptTokens = model.tokenize(request.prompt);
  if (promptTokens.length === 0) throw new RequestError("the prompt is empty", 400, "prompt");
  if (promptTokens.length >= model.contextSize) {
    // llama-server's answer to the same problem (shared/FACTS.md): HTTP 400 exceed_context_size_error.
    throw new RequestError(
      `the prompt has ${promptTokens.length} tokens; the context of a sequence holds ${model.contextSize}`,
      400,
      request.api === "chat" ? "messages" : "prompt",
      "exceed_context_size_error",
    );
  }
  const job = { promptTokens, params: request.params, cachePrompt: request.cachePrompt };
  const meta = responseMeta(model, request.api);
  const abort = new AbortController();
  // "close" also fires after a normal end; only a close before the response finished is a disconnect.
  res.on("close", () => {
    if (!res.writableFinished) abort.abort(new Error("the client disconnected"));
  });

  if (!request.stream) {
    let result: GenerationResult;
    try {
      result = await model.scheduler.run(job, { onText: () => {} }, abort.signal);
    } catch (err) {
      if (abort.signal.aborted) return;
      throw err;
    }
    sendJson(
      res,
      200,
      fullResponse(
        meta,
        result.text,
        result.finishReason,
        makeUsage(result.promptTokens, result.completionTokens, result.cachedTokens),
        result.timings,
      ),
    );
    return;
  }

  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
  });
  res.flushHeaders();
  const send = (chunk: unknown) => {
    if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  };
  let roleSent = request.api !== "chat";
  const sendRole = () => {
    if (!roleSent) send(roleChunk(meta));
    roleSent = true;
  };
  let result: GenerationResult;
  try {
    result = await model.scheduler.run(
      job,
      {
        onText: (text) => {
          sendRole();
          send(textChunk(meta, text));
        },
      },
      abort.signal,
    );
  } catch (err) {
    if (abort.signal.aborted) return;
    // Headers are gone: report like llama-server does mid-stream, as an error event (clients count the request failed).
    send(errorBody(500, (err as Error)?.message ?? String(err), "server_error"));
    res.end();
    return;
  }
  sendRole();
  const usage = makeUsage(result.promptTokens, result.completionTokens, result.cachedTokens);
  if (request.includeUsage) {
    send(finishChunk(meta, result.finishReason));
    send(usageChunk(meta, usage, result.timings));
  } else {
    // Without include_usage llama-server still puts `timings` on the last chunk (and `usage` for /v1/completions).
    send(
      finishChunk(meta, result.finishReason, {
        ...(request.api === "completions" ? { usage } : {}),
        timings: result.timings,
      }),
    );
  }
  res.write("data: [DONE]\n\n");
  res.end();
}
