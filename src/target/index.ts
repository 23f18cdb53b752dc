import type { RunConfig } from "../config/run-config.js";
import { inapplicableTargetOptions, TARGET_OPTION_KINDS } from "../config/suite-checks.js";
import type { Suite } from "../config/suite-schema.js";
import { inspectModel } from "../model/inspect.js";
import { ensureDefaultModel } from "../model/synth.js";
import { BadInputError } from "../util/errors.js";
import { createExternalTarget } from "./external.js";
import { createInProcessTarget } from "./in-process/target.js";
import { createLlamaServerTarget, type LlamaServerTargetOptions } from "./llama-server.js";
import { resolveServerBin } from "./server-bin.js";
import type { Target, TargetKind } from "./types.js";

export interface TargetPlan {
  kind: TargetKind;
  /** A model file (absent for external targets). */
  model?: string;
  /** True when tokengate chose the embedded default model. */
  embeddedDefault: boolean;
}

/** The run's flags (or Action inputs, which have the same names) that only some target kinds use. */
const FLAG_KINDS: Array<{ flag: string; key: keyof RunConfig; kinds: readonly TargetKind[] }> = [
  { flag: "--model", key: "modelPath", kinds: ["in-process", "llama-server"] },
  { flag: "--server-bin", key: "serverBin", kinds: ["llama-server"] },
  { flag: "--url", key: "url", kinds: ["external"] },
  { flag: "--api-key-env", key: "apiKeyEnv", kinds: ["external"] },
  { flag: "--wait-for-server", key: "waitForServerMs", kinds: ["external"] },
];

/**
 * Options that the chosen target does not use, said in one line. A suite whose own `target.kind` contradicts its
 * options was refused when loaded (suite-checks.ts); what is left here comes from choosing another kind on the command
 * line (`--suite examples/suites/stress.yml --target external`: its `target.threads` is for a server tokengate starts),
 * so it is a warning, not an error: the suite stays usable against every target.
 */
export function ignoredOptions(kind: TargetKind, suite: Suite, config: RunConfig): string[] {
  // The in-process target refuses serverFlags outright (createTarget); no warning first.
  const fields = inapplicableTargetOptions(suite.target, kind).filter(
    (f) => !(kind === "in-process" && f === "serverFlags"),
  );
  const flags = FLAG_KINDS.filter(({ key, kinds }) => config[key] !== undefined && !kinds.includes(kind));
  return [
    ...fields.map((f) => `target.${f} (${TARGET_OPTION_KINDS[f]!.instead})`),
    ...flags.map((f) => `${f.flag} (only for ${f.kinds.join(" and ")})`),
  ];
}

function defaultWarn(line: string): void {
  process.stderr.write(`tokengate: warning: ${line}\n`);
}

/** Which target and model a run uses: flags beat the suite file; no model and no target means the embedded default. */
export async function planTarget(suite: Suite, config: RunConfig, warn = defaultWarn): Promise<TargetPlan> {
  const kind = config.target ?? suite.target.kind ?? (config.url || suite.target.url ? "external" : "in-process");
  const ignored = ignoredOptions(kind, suite, config);
  if (ignored.length > 0) warn(`the ${kind} target ignores ${ignored.join(", ")}`);
  if (kind === "external") {
    if (!(config.url ?? suite.target.url)) {
      throw new BadInputError("the external target needs a URL", {
        subject: "--url",
        hint: "--target external --url http://127.0.0.1:8080",
      });
    }
    return { kind, embeddedDefault: false };
  }
  const serverBin = config.serverBin ?? suite.target.serverBin;
  if (kind === "llama-server" && serverBin !== undefined) {
    // A given binary that is missing or not executable is bad input: said before anything starts (a stat only).
    await resolveServerBin({
      serverBin,
      subject: config.serverBin !== undefined ? "--server-bin" : "target.serverBin",
    });
  }
  const model = config.modelPath ?? suite.target.model;
  if (model) {
    // A missing, empty or non-GGUF model is bad input: said now, before a target starts (the header only; the
    // targets inspect it again with its hash).
    await inspectModel(model, { hash: false });
    return { kind, model, embeddedDefault: false };
  }
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
        ...((config.waitForServerMs ?? t.waitForServerMs) !== undefined
          ? { waitForServerMs: config.waitForServerMs ?? t.waitForServerMs }
          : {}),
        ...(config.quiet ? { onWaiting: () => {} } : {}),
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
