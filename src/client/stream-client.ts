import { Agent, type Dispatcher, errors as undiciErrors } from "undici";
import { nowNs } from "../measure/clock.js";
import type { ErrorClass, RequestRecord, ServerTimings, TokenCountSource } from "../measure/record.js";
import type { Endpoint } from "../target/types.js";
import { buildRequest, type GenerationRequest } from "../workload/request-builder.js";
import { interpretEvent } from "./events.js";
import { SseParser } from "./sse.js";

export interface ClientOptions {
  /** A request whose body goes quiet this long fails as `timeout` (a stalled server never hangs a run). */
  stallTimeoutMs?: number;
  /** Whole-request deadline. */
  requestTimeoutMs?: number;
}

export interface RequestMeta {
  id: number;
  test: string;
  scenario: string;
  trial: number;
  measured: boolean;
  /** Open loop: when the schedule wanted this request sent (ns on the run clock). Defaults to the actual start. */
  intendedStartNs?: number;
}

/**
 * Streams one request and turns everything that happened into a RequestRecord. Never throws for request-level
 * failures: errors are data (error class + message), so a load loop can keep going and count them.
 *
 * Timing: `startNs` is taken immediately before the request is handed to undici (which writes it to a pooled,
 * already-connected socket under steady load); first byte = first body chunk; first token = first SSE event that
 * carries generated text. All from one monotonic clock (src/measure/clock.ts).
 */
export class StreamClient {
  private readonly dispatcher: Agent;
  private readonly headers: Record<string, string>;
  /** `http://host:port` and the base URL's path prefix (an external server may live under one). */
  private readonly origin: string;
  private readonly basePath: string;

  constructor(
    readonly endpoint: Endpoint,
    private readonly opts: ClientOptions = {},
  ) {
    const stall = opts.stallTimeoutMs ?? 30_000;
    // pipelining 1: one request per connection at a time (LLM streams are long); unlimited connections per origin.
    // undici's own timers have ~500 ms resolution (lib/util/timers.js): fine for timeouts, never used for measuring.
    this.dispatcher = new Agent({ headersTimeout: stall, bodyTimeout: stall, keepAliveTimeout: 30_000, pipelining: 1 });
    this.headers = { "content-type": "application/json", accept: "text/event-stream" };
    const base = new URL(endpoint.baseUrl);
    this.origin = base.origin;
    this.basePath = base.pathname.replace(/\/+$/, "");
    if (endpoint.apiKey) this.headers.authorization = `Bearer ${endpoint.apiKey}`;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Requests in flight now. */
  private inFlightCount = 0;
  /** When (Date.now) the server last sent a byte or a request last succeeded, or a request started after a quiet time. */
  private lastProgressMs = Date.now();

  /**
   * What the run's stall watchdog reads (arms/measure-run.ts): requests in flight and how long no byte arrived and no
   * request succeeded. Failed requests are not progress: a stopped server fails every request at its timeout.
   */
  activity(): { inFlight: number; idleMs: number } {
    return { inFlight: this.inFlightCount, idleMs: Date.now() - this.lastProgressMs };
  }

  async send(gen: GenerationRequest, meta: RequestMeta, signal?: AbortSignal): Promise<RequestRecord> {
    // Time between requests is not a stall: the quiet time starts with the first request sent into it.
    if (this.inFlightCount === 0) this.lastProgressMs = Date.now();
    this.inFlightCount++;
    try {
      const record = await this.sendOnce(gen, meta, signal);
      if (record.ok) this.lastProgressMs = Date.now();
      return record;
    } finally {
      this.inFlightCount--;
    }
  }

  private async sendOnce(gen: GenerationRequest, meta: RequestMeta, signal?: AbortSignal): Promise<RequestRecord> {
    const spec = buildRequest(gen, this.endpoint);
    const body = JSON.stringify(spec.body);
    const record: RequestRecord = {
      id: meta.id,
      test: meta.test,
      scenario: meta.scenario,
      api: gen.api,
      trial: meta.trial,
      intendedStartNs: 0,
      startNs: 0,
      endNs: 0,
      contentEventNs: [],
      measured: meta.measured,
      promptTokensSource: "none",
      outputTokensSource: "none",
      requestedOutputTokens: gen.maxTokens,
      status: 0,
      ok: false,
    };
    let usageCompletion: number | undefined;
    let prompt: [number, TokenCountSource] | undefined;
    let tokensPredicted: number | undefined;
    let timings: ServerTimings | undefined;
    let cachedTokens: number | undefined;
    let sawFinal = false;
    let sawFinished = false;
    let streamError: string | undefined;
    let errorBody = "";
    let readError: unknown;
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const handle = (data: string, atNs: number) => {
      const info = interpretEvent(gen.api, data);
      if (info.error !== undefined) {
        streamError = info.error;
        return;
      }
      if (info.content) {
        record.contentEventNs.push(atNs);
        record.firstTokenNs ??= atNs;
      }
      if (info.final) sawFinal = true;
      if (info.finished) sawFinished = true;
      if (info.completionTokens !== undefined) usageCompletion = info.completionTokens;
      if (info.promptTokens !== undefined && info.promptTokensSource) {
        // usage beats timings beats per-event counters; keep the best seen.
        const rank = (s: TokenCountSource) => ["usage", "timings", "tokens_predicted"].indexOf(s);
        if (!prompt || rank(info.promptTokensSource) <= rank(prompt[1]))
          prompt = [info.promptTokens, info.promptTokensSource];
      }
      if (info.tokensPredicted !== undefined) tokensPredicted = info.tokensPredicted;
      if (info.cachedTokens !== undefined) cachedTokens = info.cachedTokens;
      if (info.timings) timings = info.timings;
    };
    const sink: ResponseSink = {
      status(code) {
        record.status = code;
      },
      // Returns false to stop reading (an error event mid-stream): the exchange then aborts the connection.
      data(chunk) {
        const atNs = nowNs();
        if (record.status >= 400) {
          if (errorBody.length < 4096) errorBody += decoder.decode(chunk, { stream: true });
          return true;
        }
        record.firstByteNs ??= atNs;
        // Errors stay here, not in undici's callback: a bad event stops reading and fails this request as `parse`.
        try {
          for (const ev of parser.push(decoder.decode(chunk, { stream: true }))) {
            handle(ev.data, atNs);
            if (streamError !== undefined) return false;
          }
        } catch (err) {
          readError = err;
          return false;
        }
        return true;
      },
    };

    record.startNs = nowNs();
    record.intendedStartNs = meta.intendedStartNs ?? record.startNs;
    try {
      await this.exchange(spec.path, body, sink, record, signal);
      if (record.status >= 400) {
        record.firstByteNs = nowNs();
        return this.fail(record, "http", `HTTP ${record.status}: ${summarizeErrorBody(errorBody)}`);
      }
      if (streamError === undefined) for (const ev of parser.end()) handle(ev.data, nowNs());
    } catch (err) {
      if (streamError === undefined) {
        record.endNs ||= nowNs();
        return this.fail(record, ...classify(readError ?? err, signal));
      }
    }
    record.endNs = nowNs();
    if (streamError !== undefined) return this.fail(record, "stream", `error event mid-stream: ${streamError}`);

    // Token counts, best source first. Counting chunks is a flagged last resort: byte tokens split UTF-8 across chunks.
    const isCompletion = gen.api === "completion";
    const counted = firstDefined<[number, TokenCountSource]>([
      !isCompletion && usageCompletion !== undefined ? [usageCompletion, "usage"] : undefined,
      timings?.predicted_n !== undefined ? [timings.predicted_n, "timings"] : undefined,
      tokensPredicted !== undefined ? [tokensPredicted, "tokens_predicted"] : undefined,
      [record.contentEventNs.length, "chunks"],
    ]);
    record.outputTokens = counted[0];
    record.outputTokensSource = counted[1];
    if (prompt) [record.promptTokens, record.promptTokensSource] = prompt;
    record.serverTimings = timings;
    record.cachedTokens = cachedTokens;
    if (!sawFinal && !sawFinished) {
      return this.fail(record, "stream", "the stream ended before its final event (connection closed early?)");
    }
    record.ok = true;
    if (gen.ignoreEos && record.outputTokens < gen.maxTokens) record.shortfall = gen.maxTokens - record.outputTokens;
    return record;
  }

  /**
   * POSTs and streams the response into `sink` through undici's `dispatch` (handler callbacks: no Readable stream and
   * no promise per chunk, which a streamed token would otherwise pay for), with one retry when the connection was
   * closed before any response byte: the keep-alive race of HTTP/1.1.
   * llama-server shows it under load: when more connections are open than its fixed HTTP threads
   * (max(n_parallel + 4, cores - 1), so 3 on 2 cores with auto parallel), it serves the extra ones on "dynamic" threads
   * that close the connection after one response while still advertising keep-alive (tools/server/server-http.cpp),
   * and the next request on that socket dies with "other side closed" before reaching the server. Browsers and
   * HTTP clients retry that case; the record says it happened (`retried`) and keeps the original start time.
   * The whole exchange, retry included, has one deadline (requestTimeoutMs): a plain timer, not AbortSignal.timeout
   * plus AbortSignal.any per request, which cost ~0.1 ms of CPU per request in the client-overhead bench.
   */
  private async exchange(
    path: string,
    body: string,
    sink: ResponseSink,
    record: RequestRecord,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const deadline = { hit: false };
    let current: DispatchController | undefined;
    const abort = (reason: Error) => current?.abort(reason);
    const timer = setTimeout(() => {
      deadline.hit = true;
      abort(new DeadlineError());
    }, this.opts.requestTimeoutMs ?? 600_000);
    const onCallerAbort = () => abort(new CancelledError());
    signal?.addEventListener("abort", onCallerAbort, { once: true });
    // A request queued behind others gets its controller later: abort it then if its time is already up.
    const take = (c: DispatchController) => {
      current = c;
      if (deadline.hit) c.abort(new DeadlineError());
      else if (signal?.aborted) c.abort(new CancelledError());
    };
    try {
      if (signal?.aborted) throw new CancelledError();
      try {
        await this.attempt(path, body, sink, take);
      } catch (err) {
        const code = (err as { code?: string }).code;
        const retryable = record.status === 0 && (code === "UND_ERR_SOCKET" || code === "ECONNRESET");
        if (!retryable || deadline.hit || signal?.aborted) throw err;
        record.retried = true;
        await this.attempt(path, body, sink, take);
      }
    } catch (err) {
      if (deadline.hit) throw new DeadlineError();
      if (signal?.aborted) throw new CancelledError();
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onCallerAbort);
    }
  }

  /** One request on the dispatcher; resolves at the end of the body, rejects on any error (or a sink that stops). */
  private attempt(
    path: string,
    body: string,
    sink: ResponseSink,
    onController: (c: DispatchController) => void,
  ): Promise<void> {
    const client = this;
    return new Promise<void>((resolve, reject) => {
      let stopped = false;
      this.dispatcher.dispatch(
        { origin: this.origin, path: this.basePath + path, method: "POST", headers: this.headers, body },
        {
          onRequestStart(controller) {
            onController(controller);
          },
          onResponseStart(_controller, statusCode) {
            sink.status(statusCode);
          },
          onResponseData(controller, chunk) {
            client.lastProgressMs = Date.now();
            if (stopped) return;
            if (!sink.data(chunk)) {
              stopped = true;
              controller.abort(new StoppedError());
            }
          },
          onResponseEnd() {
            resolve();
          },
          onResponseError(_controller, err) {
            reject(err);
          },
        },
      );
    });
  }

  private fail(record: RequestRecord, errorClass: ErrorClass, message: string): RequestRecord {
    record.ok = false;
    record.errorClass = errorClass;
    record.errorMessage = message.slice(0, 500);
    record.endNs ||= nowNs();
    return record;
  }
}

/** Where the exchange sends what it receives. `data` returns false to stop reading. */
interface ResponseSink {
  status(code: number): void;
  data(chunk: Buffer): boolean;
}

class DeadlineError extends Error {
  override name = "DeadlineError";
}
class CancelledError extends Error {
  override name = "CancelledError";
}
/** The sink stopped reading (an error event mid-stream): not a failure of the exchange itself. */
class StoppedError extends Error {
  override name = "StoppedError";
}

type DispatchController = Dispatcher.DispatchController;

function firstDefined<T>(items: Array<T | undefined>): T {
  for (const i of items) if (i !== undefined) return i;
  throw new Error("unreachable: the last candidate is always defined");
}

function summarizeErrorBody(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: string; type?: string } | string };
    if (typeof j.error === "string") return j.error;
    if (j.error?.message) return `${j.error.type ? `${j.error.type}: ` : ""}${j.error.message}`;
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

function classify(err: unknown, caller: AbortSignal | undefined): [ErrorClass, string] {
  const e = err as { code?: string; message?: string; name?: string; cause?: { code?: string } };
  const msg = e?.message ?? String(err);
  if (caller?.aborted || err instanceof CancelledError)
    return ["cancelled", "cancelled by the run (interrupt or server gone)"];
  if (err instanceof DeadlineError) return ["timeout", "request deadline exceeded"];
  if (err instanceof undiciErrors.BodyTimeoutError || err instanceof undiciErrors.HeadersTimeoutError) {
    return ["timeout", `server stalled: ${msg}`];
  }
  const code = e?.code ?? e?.cause?.code;
  if (
    code === "ECONNREFUSED" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "ENOTFOUND" ||
    code === "EHOSTUNREACH"
  ) {
    return ["connect", `${code}: ${msg}`];
  }
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET" || code === "EPIPE") return ["stream", `${code}: ${msg}`];
  if (err instanceof SyntaxError) return ["parse", `invalid JSON in the stream: ${msg}`];
  return ["stream", `${code ? `${code}: ` : ""}${msg}`];
}
