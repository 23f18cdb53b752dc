import type { RunConfig } from "../config/run-config.js";
import type { Suite } from "../config/suite-schema.js";
import { ensureDefaultModel } from "../model/synth.js";
import { BadInputError } from "../util/errors.js";
import { createExternalTarget } from "./external.js";
import { createInProcessTarget } from "./in-process/target.js";
import { createLlamaServerTarget, type LlamaServerTargetOptions } from "./llama-server.js";
import type { Target, TargetKind } from "./types.js";

export interface TargetPlan {
  kind: TargetKind;
  /** A model file (absent for external targets). */
  model?: string;
  /** True when tokengate chose the embedded default model. */
  embeddedDefault: boolean;
}

/** Which target and model a run uses: flags beat the suite file; no model and no target means the embedded default. */
export async function planTarget(suite: Suite, config: RunConfig): Promise<TargetPlan> {
  const kind = config.target ?? suite.target.kind ?? (config.url || suite.target.url ? "external" : "in-process");
  if (kind === "external") {
    if (!(config.url ?? suite.target.url)) {
      throw new BadInputError("the external target needs a URL", {
        subject: "--url",
        hint: "--target external --url http://127.0.0.1:8080",
      });
    }
    return { kind, embeddedDefault: false };
  }
  const model = config.modelPath ?? suite.target.model;
  if (model) return { kind, model, embeddedDefault: false };
  return { kind, model: await ensureDefaultModel(), embeddedDefault: true };
}

/** The llama-server options a run uses (shared with experiments that restart servers, e.g. `scaling`). */
export function llamaServerOptions(plan: TargetPlan, suite: Suite, config: RunConfig): LlamaServerTargetOptions {
  const t = suite.target;
  const serverBin = config.serverBin ?? t.serverBin;
  return {
    model: plan.model!,
    ...(serverBin ? { serverBin } : {}),
    ...(t.threads ? { threads: t.threads } : {}),
    serverFlags: t.serverFlags,
    outDir: config.outDir,
    readyTimeoutMs: t.readyTimeoutMs,
  };
}

export function createTarget(plan: TargetPlan, suite: Suite, config: RunConfig): Target {
  const t = suite.target;
  switch (plan.kind) {
    case "external":
      return createExternalTarget({
        url: (config.url ?? t.url)!,
        ...((config.apiKeyEnv ?? t.apiKeyEnv) ? { apiKeyEnv: config.apiKeyEnv ?? t.apiKeyEnv } : {}),
        readyTimeoutMs: t.readyTimeoutMs,
      });
    case "llama-server":
      return createLlamaServerTarget(llamaServerOptions(plan, suite, config));
    case "in-process":
      if (t.serverFlags.length > 0) {
        throw new BadInputError("serverFlags are llama-server flags; the in-process target does not take them", {
          subject: "target.serverFlags",
          hint: "use target.threads / target.sequences for in-process, or --target llama-server",
        });
      }
      return createInProcessTarget({
        modelPath: plan.model!,
        ...(t.threads ? { threads: t.threads } : {}),
        ...(t.sequences ? { sequences: t.sequences } : {}),
        ...(t.contextSize ? { contextSize: t.contextSize } : {}),
        ...(t.batching !== undefined ? { batching: t.batching } : {}),
        ...(t.responseCache !== undefined ? { responseCache: t.responseCache } : {}),
        logFile: `${config.outDir}/in-process-server.log`,
      });
  }
}
