import type { ServerConfig } from "./options.js";

/**
 * IPC between the target (parent) and the forked model server (child). Discriminated unions, the pattern of
 * node-llama-cpp's own forked measuring command (InspectMeasureCommand.ts). Messages are plain JSON.
 *
 * Order: parent sends `start`; child answers `listening` (HTTP bound, `/health` says 503), then `ready` (model loaded,
 * `/health` says ok) or `failed`. Stopping is by signal (SIGTERM, then SIGKILL), not by message, so a child that no
 * longer reads IPC still stops; the child also stops when the IPC channel closes (the parent died).
 */
export type ParentToChild = { type: "start"; config: ServerConfig };

export interface ReadyInfo {
  /** The `model` name the server reports at /v1/models. */
  modelName: string;
  /** Context size per sequence that node-llama-cpp actually created (it may round up). */
  contextSize: number;
  /** Threads the context evaluates with. */
  threads: number;
  vocabSize: number;
  loadMs: number;
}

/** Why loading failed: `bad-model` (the file is not a model node-llama-cpp can load) or anything else. */
export type FailureKind = "bad-model" | "could-not-run";

export type ChildToParent =
  | { type: "listening"; port: number }
  | { type: "ready"; info: ReadyInfo }
  | { type: "failed"; kind: FailureKind; message: string };

export function isChildMessage(m: unknown): m is ChildToParent {
  const t = (m as { type?: unknown } | null)?.type;
  return t === "listening" || t === "ready" || t === "failed";
}

export function isParentMessage(m: unknown): m is ParentToChild {
  return (m as { type?: unknown } | null)?.type === "start";
}
