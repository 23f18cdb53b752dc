import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";

/**
 * Readiness probing shared by the targets: a small GET helper (undici) and a poll loop with a deadline and backoff that
 * stops at once when the server process dies (`failFast`). The shape follows llama.cpp's own server tests: poll
 * `/health`, fail fast if the child exits, give up at a deadline.
 */

export interface GetResult {
  status: number;
  /** The body as text (bounded by the server; these probes hit small JSON/text endpoints only). */
  body: string;
  contentType: string | undefined;
}

export interface GetOptions {
  headers?: Record<string, string>;
  /** Per-request limit for headers and body. Default 5000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** GET `url` and read the whole body. Network failures reject with undici's error (code ECONNREFUSED etc). */
export async function httpGet(url: string, opts: GetOptions = {}): Promise<GetResult> {
  // AbortSignal.timeout throws ERR_OUT_OF_RANGE for a fractional delay; remaining-time budgets are fractional.
  const timeoutMs = Math.max(1, Math.ceil(opts.timeoutMs ?? 5000));
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const res = await request(url, {
    method: "GET",
    headers: opts.headers,
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const body = await res.body.text();
  const ct = res.headers["content-type"];
  return { status: res.statusCode, body, contentType: Array.isArray(ct) ? ct[0] : ct };
}

/** GET and parse JSON; `undefined` for a non-200 answer or a body that is not JSON. */
export async function getJson<T = unknown>(
  url: string,
  opts: GetOptions = {},
): Promise<{ status: number; json: T | undefined }> {
  const r = await httpGet(url, opts);
  if (r.status !== 200) return { status: r.status, json: undefined };
  try {
    return { status: r.status, json: JSON.parse(r.body) as T };
  } catch {
    return { status: r.status, json: undefined };
  }
}

const NO_ANSWER = "no answer in time";

/** Why a probe failed, in words for an error message (`connection refused`, `HTTP 503`). */
function describeProbeError(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; name?: string; message?: string };
  const code = e.code ?? e.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused (nothing listening yet)";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" || e.name === "TimeoutError")
    return NO_ANSWER;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host name not found";
  return code ?? e.message ?? String(err);
}

export interface ProbeOutcome {
  ready: boolean;
  /** Why not ready (shown in the timeout error), or what answered. */
  detail: string;
  /** Nothing answered within the probe's time (see pollUntilReady: such a probe does not hide an earlier answer). */
  noAnswer?: boolean;
  /**
   * Nothing is there to answer: the connection was refused or the host name does not resolve. Unlike a 503 or a slow
   * answer, waiting helps only when a server is still starting (see PollOptions.refusedForMs).
   */
  refused?: boolean;
}

/** A failed probe as a not-ready outcome, marking the ones that timed out and the ones nothing was there to answer. */
export function probeFailure(err: unknown): ProbeOutcome {
  const detail = describeProbeError(err);
  if (detail === NO_ANSWER) return { ready: false, detail, noAnswer: true };
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (code === "ECONNREFUSED" || code === "ENOTFOUND") return { ready: false, detail, refused: true };
  return { ready: false, detail };
}

/**
 * llama-server's readiness: `GET /health` answers 200 `{"status":"ok"}` when the model is loaded and 503 while it
 * loads. Anything else (refused connection, other status) means not ready yet.
 */
export async function probeLlamaHealth(baseUrl: string, opts: GetOptions = {}): Promise<ProbeOutcome> {
  try {
    const r = await httpGet(`${baseUrl}/health`, opts);
    if (r.status === 200) {
      try {
        const j = JSON.parse(r.body) as { status?: unknown };
        if (j.status === "ok") return { ready: true, detail: "HTTP 200 ok" };
      } catch {
        // fall through: a 200 that is not the JSON we expect is not llama-server's health
      }
      return { ready: false, detail: `HTTP 200 with unexpected body ${JSON.stringify(r.body.slice(0, 80))}` };
    }
    return { ready: false, detail: r.status === 503 ? "HTTP 503 (loading)" : `HTTP ${r.status}` };
  } catch (err) {
    return probeFailure(err);
  }
}

export interface PollOptions {
  /** Overall deadline for the wait. */
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * A promise that rejects when waiting is pointless (the server process exited). Polling stops at once and the
   * rejection propagates.
   */
  failFast?: Promise<never>;
  /** First wait between probes; doubles up to `maxDelayMs`. Defaults 50 ms and 1000 ms. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Give up once every probe for this long has been refused (ProbeOutcome.refused): nothing listens at the address, so
   * the full deadline would only delay the error. The result then has `refused: true`. Default: wait to the deadline.
   */
  refusedForMs?: number;
  /** Called about every `waitingEveryMs` (default 3000) while not ready, with the last detail and the time waited. */
  onWaiting?: (detail: string, elapsedMs: number) => void;
  waitingEveryMs?: number;
}

export type PollResult =
  | { ready: true; detail: string; elapsedMs: number }
  | { ready: false; detail: string; elapsedMs: number; refused?: boolean };

/**
 * Calls `probe` until it reports ready or the deadline passes (resolves `{ready:false}` with the last detail; the caller
 * decides which error that is). Rejects with `signal.reason` when aborted and with `failFast`'s error when that rejects.
 * Each probe gets at most the remaining time.
 */
export async function pollUntilReady(
  probe: (remainingMs: number, signal: AbortSignal) => Promise<ProbeOutcome>,
  opts: PollOptions,
): Promise<PollResult> {
  const started = performance.now();
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  let failed: unknown;
  let hasFailed = false;
  opts.failFast?.catch((err: unknown) => {
    failed = err;
    hasFailed = true;
    stop.abort(err);
  });
  let delay = opts.initialDelayMs ?? 50;
  const maxDelay = opts.maxDelayMs ?? 1000;
  let detail = "no probe answered yet";
  let lastAnswer: string | undefined;
  /** When the current run of refused probes began (relative to `started`); undefined after any other outcome. */
  let refusedSince: number | undefined;
  const waitingEvery = opts.waitingEveryMs ?? 3000;
  let nextWaitingAt = waitingEvery;
  const check = () => {
    if (hasFailed) throw failed;
    opts.signal?.throwIfAborted();
  };
  try {
    for (;;) {
      check();
      const elapsed = performance.now() - started;
      const remaining = opts.timeoutMs - elapsed;
      if (remaining <= 0) return { ready: false, detail, elapsedMs: elapsed };
      const outcome = await probe(Math.max(1, Math.ceil(Math.min(remaining, 5000))), signal);
      check();
      refusedSince = outcome.refused ? (refusedSince ?? elapsed) : undefined;
      // The last probe before the deadline gets only the time that is left and may time out; an earlier answer (HTTP
      // 503 while loading) says more about why the server is not ready, so it stays in the detail.
      if (outcome.noAnswer && lastAnswer !== undefined) detail = `${lastAnswer}; the last probe got no answer in time`;
      else detail = outcome.detail;
      if (!outcome.noAnswer) lastAnswer = outcome.detail;
      if (outcome.ready) return { ready: true, detail, elapsedMs: performance.now() - started };
      const now = performance.now() - started;
      if (refusedSince !== undefined && opts.refusedForMs !== undefined && now - refusedSince >= opts.refusedForMs) {
        return { ready: false, detail, elapsedMs: now, refused: true };
      }
      if (opts.onWaiting && now >= nextWaitingAt) {
        opts.onWaiting(detail, now);
        while (nextWaitingAt <= now) nextWaitingAt += waitingEvery;
      }
      const wait = Math.min(delay, Math.max(0, opts.timeoutMs - (performance.now() - started)));
      try {
        await sleep(wait, undefined, { signal });
      } catch {
        check();
      }
      delay = Math.min(delay * 2, maxDelay);
    }
  } finally {
    stop.abort();
  }
}
