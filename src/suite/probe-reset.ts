import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { busySlots, scrapeLlamaMetrics } from "../measure/server-metrics.js";
import { httpGet } from "../target/health.js";
import type { Endpoint, TargetKind } from "../target/types.js";

/**
 * A load probe (a ramp step, a max-load probe) must not inherit what the probe before it left in the server: slots
 * whose KV cache a heavier step filled, requests the previous step's drain gave up on that the server still works on.
 * Before each probe the load tests call the context's ProbeReset (TestContext.probeReset), which waits, bounded,
 * until the server is idle and resets its state where the server has a way to; what it did, or why it could not, goes
 * into the step's digest (`reset`), so a result never claims a reset that did not happen.
 *
 * - llama-server: GET /slots until no slot `is_processing` (else /metrics `requests_processing` and
 *   `requests_deferred` at 0), then POST /slots/{id}?action=erase for every slot (the slot's prompt tokens and its
 *   KV cells, llama.cpp `server_slot::prompt_clear`). Quirk of llama.cpp b1-80fb11a: every POST /slots action,
 *   erase included, answers HTTP 501 "This server does not support slots action. Start it with `--slot-save-path`"
 *   unless the server was started with `--slot-save-path` (tools/server/server-context.cpp `post_slots`); the
 *   llama-server target therefore passes one. An erase on a busy slot is deferred by the server until the slot is
 *   free, so each POST carries the remaining wait budget as its timeout. The host-RAM prompt cache (`--cache-ram`) is
 *   not a slot and is not erased: a probe can still get prompt-cache hits from it (tokengate's prompts are distinct
 *   per request, so it rarely matters).
 * - external servers: the same when they answer /slots like llama-server; otherwise "not reset".
 * - the in-process target: waits for its scheduler to be idle (GET /tokengate/stats `active`/`queued`) but has no
 *   way to clear what its sequences hold (it reuses the longest cached prefix): "not reset".
 *
 * A later engine may implement ProbeReset by restarting the server (this module never restarts anything); the test
 * keeps its endpoint and client, so a restart must come back on the same address.
 */

export interface ProbeResetOutcome {
  /** The server's state was reset before the probe (every slot's KV cache erased). False: see `detail`. */
  reset: boolean;
  /** Every slot (or the scheduler) was idle when the probe started; absent when the server does not say. */
  idle?: boolean;
  /** How (the ProbeReset's `method`). */
  method: string;
  /** One line: what was done, or why it could not be. */
  detail: string;
  /** Time spent waiting for idle and resetting (ms). */
  waitedMs: number;
  /** Slots seen. */
  slots?: number;
  /** Prompt tokens the erase removed, over all slots (what the previous probe left). */
  erasedTokens?: number;
}

/** Puts the server back to a clean, idle state before a load probe. Provided by the run (TestContext.probeReset). */
export interface ProbeReset {
  /** What it does, one line for the results: `llama-server /slots: wait idle, erase every slot`. */
  readonly method: string;
  /** True when it can reset state (not only wait for idle): said in results before any probe ran. */
  readonly canReset: boolean;
  /**
   * Runs before a probe against the context's current endpoint. Bounded in time; never throws for what the server
   * answers (the outcome says it), only when `signal` fires.
   */
  beforeProbe(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeResetOutcome>;
}

export interface ProbeResetOptions {
  /** How long to wait for the server to go idle (ms). Default 30 s: a drained step leaves at most cancelled work. */
  idleTimeoutMs?: number;
  /** Poll interval while waiting (ms). Default 100. */
  pollMs?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_POLL_MS = 100;

/** `0.5`, `30`: the wait as the user would set it. */
function seconds(ms: number): string {
  return String(Number((ms / 1000).toPrecision(2)));
}

function authHeaders(endpoint: Endpoint): Record<string, string> | undefined {
  return endpoint.apiKey ? { authorization: `Bearer ${endpoint.apiKey}` } : undefined;
}

/** What idleness the server can report, read once. */
type IdleReading =
  | { source: "slots"; idle: boolean; slots: number; busy: number; ids: number[] }
  | { source: "metrics"; idle: boolean; processing: number; deferred: number }
  | { source: "stats"; idle: boolean; active: number; queued: number }
  | { source: "none"; why: string };

async function readSlots(endpoint: Endpoint, signal: AbortSignal): Promise<IdleReading | undefined> {
  try {
    const r = await httpGet(`${endpoint.baseUrl}/slots`, {
      signal,
      timeoutMs: 5000,
      ...(endpoint.apiKey ? { headers: authHeaders(endpoint)! } : {}),
    });
    if (r.status !== 200) return undefined;
    const json = JSON.parse(r.body) as unknown;
    const b = busySlots(json);
    if (!b) return undefined;
    const ids = (json as Array<{ id?: unknown }>).map((s, i) => (typeof s.id === "number" ? s.id : i));
    return { source: "slots", idle: b.busy === 0, slots: b.slots, busy: b.busy, ids };
  } catch {
    signal.throwIfAborted();
    return undefined;
  }
}

async function readMetrics(endpoint: Endpoint, signal: AbortSignal): Promise<IdleReading | undefined> {
  if (!endpoint.metricsUrl) return undefined;
  const snap = await scrapeLlamaMetrics(endpoint.metricsUrl, {
    signal,
    timeoutMs: 5000,
    ...(endpoint.apiKey ? { headers: authHeaders(endpoint)! } : {}),
  });
  signal.throwIfAborted();
  const processing = snap?.values.requests_processing;
  if (processing === undefined) return undefined;
  const deferred = snap?.values.requests_deferred ?? 0;
  return { source: "metrics", idle: processing === 0 && deferred === 0, processing, deferred };
}

async function readLlamaIdle(endpoint: Endpoint, signal: AbortSignal): Promise<IdleReading> {
  return (
    (await readSlots(endpoint, signal)) ??
    (await readMetrics(endpoint, signal)) ?? {
      source: "none",
      why: "the server answers neither GET /slots nor llama-server's /metrics gauges",
    }
  );
}

async function readInProcessIdle(endpoint: Endpoint, signal: AbortSignal): Promise<IdleReading> {
  try {
    const r = await httpGet(`${endpoint.baseUrl}/tokengate/stats`, { signal, timeoutMs: 5000 });
    const s = r.status === 200 ? (JSON.parse(r.body) as { active?: unknown; queued?: unknown }) : undefined;
    if (typeof s?.active === "number" && typeof s.queued === "number")
      return { source: "stats", idle: s.active === 0 && s.queued === 0, active: s.active, queued: s.queued };
    return { source: "none", why: `GET /tokengate/stats answered HTTP ${r.status} without active/queued counts` };
  } catch (err) {
    signal.throwIfAborted();
    return { source: "none", why: `GET /tokengate/stats failed: ${(err as Error).message}` };
  }
}

function describeBusy(r: IdleReading): string {
  switch (r.source) {
    case "slots":
      return `${r.busy} of ${r.slots} slots processing (GET /slots)`;
    case "metrics":
      return `requests_processing ${r.processing}, requests_deferred ${r.deferred} (/metrics)`;
    case "stats":
      return `${r.active} requests active, ${r.queued} queued (/tokengate/stats)`;
    case "none":
      return r.why;
  }
}

/** Polls `read` until it says idle or the budget ends; the last reading and the time it took. */
async function waitIdle(
  read: (signal: AbortSignal) => Promise<IdleReading>,
  timeoutMs: number,
  pollMs: number,
  signal: AbortSignal,
): Promise<{ reading: IdleReading; timedOut: boolean }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const reading = await read(signal);
    if (reading.source === "none" || reading.idle) return { reading, timedOut: false };
    if (performance.now() >= deadline) return { reading, timedOut: true };
    await sleep(pollMs, undefined, { signal });
  }
}

interface EraseAnswer {
  ok: boolean;
  status: number;
  erased?: number;
  message?: string;
}

async function eraseSlot(endpoint: Endpoint, id: number, timeoutMs: number, signal: AbortSignal): Promise<EraseAnswer> {
  const ms = Math.max(1000, Math.ceil(timeoutMs));
  try {
    const res = await request(`${endpoint.baseUrl}/slots/${id}?action=erase`, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders(endpoint) },
      body: "{}",
      signal: AbortSignal.any([signal, AbortSignal.timeout(ms)]),
      headersTimeout: ms,
      bodyTimeout: ms,
    });
    const text = await res.body.text();
    let json: { n_erased?: unknown; error?: { message?: unknown } } | undefined;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      json = undefined;
    }
    const message = typeof json?.error?.message === "string" ? json.error.message : undefined;
    return {
      ok: res.statusCode === 200,
      status: res.statusCode,
      ...(typeof json?.n_erased === "number" ? { erased: json.n_erased } : {}),
      ...(message ? { message } : {}),
    };
  } catch (err) {
    signal.throwIfAborted();
    return { ok: false, status: 0, message: (err as Error).message };
  }
}

/**
 * llama-server (started by tokengate, or external when it answers /slots): wait until idle, erase every slot, check
 * idle again. `external` only changes the words when there is no /slots API.
 */
export function llamaSlotsReset(opts: ProbeResetOptions & { external?: boolean } = {}): ProbeReset {
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const method = "llama-server /slots: wait until every slot is idle, then erase each slot's KV cache";
  return {
    method,
    canReset: true,
    async beforeProbe(endpoint, signal) {
      const t0 = performance.now();
      const elapsed = () => performance.now() - t0;
      const done = (o: Omit<ProbeResetOutcome, "method" | "waitedMs">): ProbeResetOutcome => ({
        ...o,
        method,
        waitedMs: Math.round(elapsed()),
      });
      const read = (s: AbortSignal) => readLlamaIdle(endpoint, s);
      const first = await waitIdle(read, idleTimeoutMs, pollMs, signal);
      const r = first.reading;
      if (r.source === "none") {
        const what = opts.external ? "the external server" : "the server";
        return done({ reset: false, detail: `not reset: ${what} has no slots API (${r.why})` });
      }
      const busyNote = first.timedOut
        ? `still busy after ${seconds(idleTimeoutMs)} s of waiting for idle: ${describeBusy(r)}; `
        : "";
      if (r.source !== "slots") {
        return done({
          reset: false,
          idle: r.idle,
          detail: `${busyNote}not reset: GET /slots is off (--no-slots), so the slots to erase are unknown; idle read from ${describeBusy(r)}`,
        });
      }
      let erased = 0;
      const failures: string[] = [];
      for (const id of r.ids) {
        const left = idleTimeoutMs - elapsed();
        const a = await eraseSlot(endpoint, id, left, signal);
        if (a.ok) erased += a.erased ?? 0;
        else
          failures.push(
            `slot ${id}: ${a.status ? `HTTP ${a.status}` : "no answer"}${a.message ? ` (${a.message})` : ""}`,
          );
      }
      const after = await readLlamaIdle(endpoint, signal);
      const idle = after.source === "none" ? undefined : after.idle;
      const idleText =
        idle === undefined ? "" : idle ? "; all slots idle" : `; not idle at the probe start: ${describeBusy(after)}`;
      if (failures.length) {
        // 501 on every slot: the server was started without --slot-save-path (see the module comment).
        const hint = failures.every((f) => f.includes("HTTP 501"))
          ? " (llama-server refuses slot actions unless started with --slot-save-path)"
          : "";
        return done({
          reset: false,
          ...(idle === undefined ? {} : { idle }),
          slots: r.slots,
          detail: `${busyNote}not reset: erase failed for ${failures.join("; ")}${hint}${idleText}`,
        });
      }
      return done({
        reset: true,
        ...(idle === undefined ? {} : { idle }),
        slots: r.slots,
        erasedTokens: erased,
        detail: `${busyNote}erased ${r.slots} slots (${erased} cached prompt tokens)${idleText}`,
      });
    },
  };
}

/** The in-process target: waits until its scheduler is idle; it has no way to clear its sequences. */
export function inProcessIdleWait(opts: ProbeResetOptions = {}): ProbeReset {
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const method = "in-process: wait until the scheduler is idle (its sequences' KV state cannot be cleared)";
  return {
    method,
    canReset: false,
    async beforeProbe(endpoint, signal) {
      const t0 = performance.now();
      const { reading: r, timedOut } = await waitIdle(
        (s) => readInProcessIdle(endpoint, s),
        idleTimeoutMs,
        pollMs,
        signal,
      );
      const base = "not reset: the in-process target has no API to clear the KV state its sequences keep";
      return {
        reset: false,
        ...(r.source === "none" ? {} : { idle: r.idle }),
        method,
        waitedMs: Math.round(performance.now() - t0),
        detail:
          r.source === "none"
            ? `${base}; idle unknown (${r.why})`
            : timedOut
              ? `${base}; still busy after ${seconds(idleTimeoutMs)} s of waiting: ${describeBusy(r)}`
              : `${base}; scheduler idle`,
      };
    },
  };
}

/** No way to reset or even to see the server's state: says so at every probe. */
export function noProbeReset(why: string): ProbeReset {
  const method = "none";
  return {
    method,
    canReset: false,
    async beforeProbe() {
      return { reset: false, method, waitedMs: 0, detail: `not reset: ${why}` };
    },
  };
}

/** The reset a run offers its tests, by target kind. */
export function probeResetFor(kind: TargetKind, opts: ProbeResetOptions = {}): ProbeReset {
  switch (kind) {
    case "llama-server":
      return llamaSlotsReset(opts);
    case "external":
      return llamaSlotsReset({ ...opts, external: true });
    case "in-process":
      return inProcessIdleWait(opts);
  }
}

/** What the load tests use when the context provides none (tests that build their own context). */
export const NO_RESET_PROVIDED = noProbeReset("the run provided no way to reset the server between probes");

/** Summary of a test's resets for its `extra` (`stateReset`). Pure. */
export interface ResetSummary {
  method: string;
  canReset: boolean;
  probes: number;
  /** Probes that started after a successful reset. */
  reset: number;
  /** Probes that started with the server not idle (the wait ran out). */
  notIdle: number;
  /** Probes where idleness could not be read. */
  idleUnknown: number;
  /** The first probe's detail that was not a clean reset, if any: the reason to show. */
  firstProblem?: string;
}

export function summarizeResets(
  reset: ProbeReset,
  outcomes: ReadonlyArray<ProbeResetOutcome | undefined>,
): ResetSummary {
  const seen = outcomes.filter((o): o is ProbeResetOutcome => o !== undefined);
  const problem = seen.find((o) => !o.reset || o.idle === false);
  return {
    method: reset.method,
    canReset: reset.canReset,
    probes: seen.length,
    reset: seen.filter((o) => o.reset).length,
    notIdle: seen.filter((o) => o.idle === false).length,
    idleUnknown: seen.filter((o) => o.idle === undefined).length,
    ...(problem ? { firstProblem: problem.detail } : {}),
  };
}
