/**
 * The system under test. Every target ends up as an OpenAI-compatible HTTP endpoint on 127.0.0.1 (or a user URL), so
 * one client measures them all.
 */
export type TargetKind = "in-process" | "llama-server" | "external";

/** Which request shapes an endpoint understands. */
export type ApiKind = "completion" | "openai-completions" | "openai-chat";

export interface Endpoint {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  baseUrl: string;
  /** APIs this endpoint serves. llama-server serves all three; the in-process target the two OpenAI ones. */
  apis: ApiKind[];
  /** Sent as `Authorization: Bearer ...`; never logged or written to results. */
  apiKey?: string;
  /** The `model` field for OpenAI requests. */
  modelName: string;
  /**
   * Token ids to ban with logit_bias. Set for synthetic models tokengate made: random weights emit lone UTF-8 byte
   * tokens and llama-server then answers HTTP 500 (shared/FACTS.md). Empty for real models.
   */
  bannedTokenIds: number[];
  /** `/metrics` (Prometheus text) when the server exposes it. */
  metricsUrl?: string;
  /** Where the server's own log goes (an artifact), when tokengate started it. */
  logFile?: string;
}

export interface ModelFingerprint {
  path?: string;
  sha256?: string;
  architecture?: string;
  /** Parameters, layers, embedding size, heads, ... as read from the GGUF. */
  shape?: Record<string, number>;
  /** General file type, e.g. `q8_0`. */
  quantization?: string;
  sizeBytes?: number;
  /** True when tokengate wrote it (`tokengate model synth`). */
  synthetic?: boolean;
  vocab?: string;
}

export interface TargetFingerprint {
  kind: TargetKind;
  /** llama.cpp build (`/props` build_info for llama-server, node-llama-cpp's bundled tag in-process). */
  build?: string;
  serverFlags: string[];
  model?: ModelFingerprint;
  /** Anything else worth recording (threads, slots, backend). */
  details: Record<string, string | number | boolean>;
}

/**
 * Lifecycle: `start()` once, then `stop()` (idempotent, safe after a failed start). Implements AsyncDisposable so
 * `await using target = ...` always stops it.
 */
export interface Target extends AsyncDisposable {
  readonly kind: TargetKind;
  start(signal?: AbortSignal): Promise<Endpoint>;
  stop(): Promise<void>;
  fingerprint(): Promise<TargetFingerprint>;
  /** True while the server is believed alive (a crashed llama-server child reports false). */
  alive(): boolean;
  /**
   * The server's process id while tokengate runs it: tokengate owns it (the Action's post step kills what is left of
   * it). Absent for an external server, which is never tokengate's to kill: see servingPids.
   */
  pid?(): number | undefined;
  /**
   * The processes on this machine that serve the requests, whoever started them, for the busy-machine guard
   * (measure/machine-load.ts ownProcesses): their CPU time is the test's own work, not other work. Absent: `pid()`.
   * An empty list: the server is not on this machine (nothing here to separate). `{ unknown }`: it is on this machine
   * but its process could not be found (why), so its CPU time is inside "other work".
   */
  servingPids?(): readonly number[] | { unknown: string };
}
