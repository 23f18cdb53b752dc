/**
 * What two runs have in common, split in two (docs/verdicts.md "Environment and configuration"):
 * - the ENVIRONMENT: the machine the numbers were measured on (architecture, OS, CPU model and count, GPUs, driver,
 *   CUDA, GPU count and links). Two runs on different environments measure different machines: a stored baseline is
 *   compared only with runs of its own environment.
 * - the CONFIGURATION under test: what a pull request changes (server build and flags, model identity, shape and
 *   quantization, target kind and details, tokengate and Node versions, the suite file, the OS release). It never
 *   stops a comparison: it is what the comparison judges, and "What changed" is the first thing the verdict says.
 * A test whose own parameters differ (prompt lengths, concurrency, max tokens) measures another thing and is "not
 * comparable" per test: compare.ts testDifference. Pure.
 */
import { basename } from "node:path";
import type { ConfigurationChange, EnvironmentFingerprint, Results } from "../measure/results.js";

/** A difference of environment or configuration (a ConfigurationChange has the same shape). */
export interface FingerprintDifference {
  /** Field path: `gpus`, `target.model.sha256`, `target.serverFlags.--parallel`. */
  field: string;
  /** What a reviewer calls it: `GPU`, `model`, `--parallel`. */
  label: string;
  baseline: string;
  run: string;
}

/**
 * Server flags that change between identical setups (a free port, a temp log path, where the model file lies: the
 * model's identity is its sha256) and so are never a change.
 */
const VOLATILE_FLAGS = new Set([
  "--host",
  "--port",
  "--log-file",
  "-m",
  "--model",
  "--api-key",
  "--api-key-file",
  "-a",
  "--alias",
  "--slot-save-path",
  "--path",
]);
/** Target details whose names say they differ per run rather than per setup. */
const VOLATILE_DETAIL = /(pid|port|path|file|dir|url|host|time|date)/i;

function show(v: unknown): string {
  if (v === undefined || v === null || v === "") return "none";
  return String(v);
}

function differ(out: FingerprintDifference[], field: string, label: string, a: unknown, b: unknown): void {
  const sa = show(a);
  const sb = show(b);
  if (sa !== sb) out.push({ field, label, baseline: sa, run: sb });
}

/** `linux 6.1.0-28-amd64` -> `linux`: the kernel release is a configuration change, the OS an environment. */
function osName(os: string): string {
  return os.split(" ")[0] ?? os;
}

function osRelease(os: string): string {
  return os.split(" ").slice(1).join(" ");
}

/**
 * Differences of the machine: when any exists, a stored baseline does not describe this machine. Kernel release,
 * Node and memory size are left out (configuration or irrelevant).
 */
export function environmentDifferences(
  baseline: EnvironmentFingerprint,
  run: EnvironmentFingerprint,
): FingerprintDifference[] {
  const out: FingerprintDifference[] = [];
  differ(out, "arch", "architecture", baseline.arch, run.arch);
  differ(out, "os", "OS", osName(baseline.os), osName(run.os));
  differ(out, "cpuModel", "CPU", baseline.cpuModel, run.cpuModel);
  differ(out, "cpuCount", "CPU count", baseline.cpuCount, run.cpuCount);
  differ(out, "gpus", "GPU", gpuNames(baseline), gpuNames(run));
  differ(out, "gpus.driver", "GPU driver", gpuDrivers(baseline), gpuDrivers(run));
  differ(out, "cuda", "CUDA", baseline.cuda, run.cuda);
  // Recorded only since multi-GPU runs; a file without it says nothing either way.
  if (baseline.gpuCount !== undefined && run.gpuCount !== undefined) {
    differ(out, "gpuCount", "GPUs visible", baseline.gpuCount, run.gpuCount);
  }
  differ(out, "gpuTopology", "GPU links", baseline.gpuTopology?.summary, run.gpuTopology?.summary);
  return out;
}

/** Differences of the server under test alone (target kind, build, model, flags, details). */
export function targetDifferences(
  baseline: EnvironmentFingerprint,
  run: EnvironmentFingerprint,
): FingerprintDifference[] {
  const out: FingerprintDifference[] = [];
  const bt = baseline.target;
  const rt = run.target;
  differ(out, "target.kind", "target", bt.kind, rt.kind);
  differ(out, "target.build", "llama.cpp build", bt.build, rt.build);
  differ(out, "target.model.sha256", "model", modelIdentity(bt.model), modelIdentity(rt.model));
  differ(out, "target.model.quantization", "quantization", bt.model?.quantization, rt.model?.quantization);
  const shapeKeys = [...new Set([...Object.keys(bt.model?.shape ?? {}), ...Object.keys(rt.model?.shape ?? {})])];
  for (const k of shapeKeys.sort()) {
    differ(out, `target.model.shape.${k}`, `model ${k}`, bt.model?.shape?.[k], rt.model?.shape?.[k]);
  }
  out.push(...flagChanges(bt.serverFlags, rt.serverFlags));
  const keys = new Set([...Object.keys(bt.details ?? {}), ...Object.keys(rt.details ?? {})]);
  for (const k of [...keys].sort()) {
    if (VOLATILE_DETAIL.test(k)) continue;
    differ(out, `target.details.${k}`, `target ${k}`, bt.details?.[k], rt.details?.[k]);
  }
  return out;
}

/**
 * What changed between two runs' configurations, in reading order: the server, the model, its flags, then tokengate,
 * Node, the suite file and the kernel. The list a verdict leads with ("What changed: ...").
 */
export function configurationChanges(baseline: Results, run: Results): ConfigurationChange[] {
  const out = targetDifferences(baseline.environment, run.environment);
  differ(out, "tool.version", "tokengate", baseline.tool?.version, run.tool?.version);
  differ(out, "environment.node", "Node", baseline.environment.node, run.environment.node);
  if (baseline.suite.sha256 !== run.suite.sha256) {
    out.push({
      field: "suite.sha256",
      label: "suite file",
      baseline: `sha256 ${baseline.suite.sha256.slice(0, 12)}`,
      run: `sha256 ${run.suite.sha256.slice(0, 12)}`,
    });
  }
  differ(out, "environment.os", "OS release", osRelease(baseline.environment.os), osRelease(run.environment.os));
  return out;
}

/**
 * Everything that makes two runs different setups: environment and server. Runs of one baseline must agree on all of
 * it (baseline.ts runDifference).
 */
export function setupDifferences(
  baseline: EnvironmentFingerprint,
  run: EnvironmentFingerprint,
): FingerprintDifference[] {
  return [...environmentDifferences(baseline, run), ...targetDifferences(baseline, run)];
}

/** `GPU differs (baseline NVIDIA H200, run NVIDIA A100); CUDA differs (baseline 12.8, run 13.0)`. */
export function describeDifferences(
  diffs: readonly FingerprintDifference[],
  sides: { baseline: string; run: string } = { baseline: "baseline", run: "run" },
): string {
  return diffs
    .map(
      (d) =>
        `${d.label} ${d.label.endsWith("flags") ? "differ" : "differs"} (${sides.baseline} ${d.baseline}, ${sides.run} ${d.run})`,
    )
    .join("; ");
}

/** `llama.cpp build b6000 -> b6100; --parallel 8 -> 16; -fa not set -> on`: the "What changed" line (plain text). */
export function describeChanges(changes: readonly ConfigurationChange[], max = 12): string {
  if (changes.length === 0) return "nothing (same configuration)";
  const shown = changes.slice(0, max).map((c) => `${c.label} ${c.baseline} -> ${c.run}`);
  const more = changes.length - shown.length;
  return `${shown.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
}

function gpuNames(env: EnvironmentFingerprint): string {
  if (env.gpus.length === 0) return "none";
  const counts = new Map<string, number>();
  for (const g of env.gpus) counts.set(g.name, (counts.get(g.name) ?? 0) + 1);
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => (n > 1 ? `${n}x ${name}` : name))
    .join(" + ");
}

function gpuDrivers(env: EnvironmentFingerprint): string {
  return [...new Set(env.gpus.map((g) => g.driver).filter((d) => d))].sort().join(", ") || "none";
}

function modelIdentity(model: EnvironmentFingerprint["target"]["model"]): string | undefined {
  if (!model) return undefined;
  const name = model.path ? basename(model.path) : undefined;
  if (model.sha256) return `${name ? `${name} ` : ""}(sha256 ${model.sha256.slice(0, 12)})`;
  // Without a hash, the file name and size are the best identity we have.
  if (name) return `${name}${model.sizeBytes ? ` (${model.sizeBytes} bytes)` : ""}`;
  return undefined;
}

/** Server flags as flag -> value ("" for switches), volatile ones dropped; `--port=80` and `--port 80` read alike. */
export function normalizeServerFlags(flags: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i]!;
    if (!f.startsWith("-") || /^-\d/.test(f)) continue;
    let name = f;
    let value = "";
    const eq = f.indexOf("=");
    if (f.startsWith("--") && eq > 0) {
      name = f.slice(0, eq);
      value = f.slice(eq + 1);
    } else {
      const next = flags[i + 1];
      if (next !== undefined && (!next.startsWith("-") || /^-\d/.test(next))) {
        value = next;
        i++;
      }
    }
    if (!VOLATILE_FLAGS.has(name)) out.set(name, value);
  }
  return out;
}

/** One change per flag: `--parallel 8 -> 16`, `--flash-attn not set -> on`, `--metrics set -> not set`. */
function flagChanges(a: readonly string[], b: readonly string[]): FingerprintDifference[] {
  const fa = normalizeServerFlags(a);
  const fb = normalizeServerFlags(b);
  const names = [...new Set([...fa.keys(), ...fb.keys()])].sort();
  const value = (v: string | undefined) => (v === undefined ? "not set" : v === "" ? "set" : v);
  const out: FingerprintDifference[] = [];
  for (const n of names) {
    const va = fa.get(n);
    const vb = fb.get(n);
    if (va === vb) continue;
    out.push({ field: `target.serverFlags.${n}`, label: n, baseline: value(va), run: value(vb) });
  }
  return out;
}
