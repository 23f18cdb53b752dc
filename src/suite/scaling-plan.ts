import type { ScalingTest, TensorSplitPreset } from "../config/suite-schema.js";
import { type GpuInventory, linkScore, linkText, topologyRow, type VisibleGpu } from "../measure/gpu-topology.js";
import type { GpuTopology, Metrics, RequestCounts } from "../measure/results.js";
import { BadInputError } from "../util/errors.js";

/**
 * The multi-GPU scaling experiment, pure part: which configurations to measure for the GPUs present (planScaling),
 * and the figures per configuration (digestPoint, scalingFigures). The runner is src/suite/scaling.ts, the report
 * src/report/scaling-report.ts; both read the types below (the report from results.json's `extra`).
 */

export type SplitMode = ScalingTest["splitModes"][number];

/** One configuration: a llama-server started with these GPUs and flags. */
export interface PlannedPoint {
  /** `cpu`, `gpu1`, `gpu2-layer`, `gpu4-row-main-light`, `gpu2-layer-ts3-1`: file-name safe (server logs use it). */
  id: string;
  /** Short axis label: `cpu`, `1`, `2 layer`, `4 row main-light`. Numbers and our own words only. */
  label: string;
  /** GPUs used (0: the CPU point). */
  gpus: number;
  /** nvidia-smi indices of the GPUs, in CUDA order (device 0 first: llama.cpp's main GPU). */
  devices: number[];
  /** CUDA_VISIBLE_DEVICES for the server (UUIDs where known); absent for the CPU point. */
  cudaVisibleDevices?: string;
  splitMode?: SplitMode;
  /** -ts ratios, device order; absent for an even split. */
  tensorSplit?: number[];
  /** The preset name or the ratios as written (`main-light`, `3:1`). */
  tensorSplitName?: string;
  /** Flags added after the suite's server flags. */
  flags: string[];
  /** Links between the chosen GPUs (`NV18`, `NV18 x4, SYS x2`); empty for fewer than 2 or without a topology. */
  links: string;
}

export interface ScalingPlan {
  points: PlannedPoint[];
  /** GPU counts asked for and not measured, with why. */
  skipped: Array<{ gpus: number; reason: string }>;
  /** Things worth knowing about the plan (from the inventory and the tensor splits). */
  notes: string[];
  /** GPUs the plan could use. */
  visibleGpus: number;
  /** nvidia-smi names of the visible GPUs, counted: `8x NVIDIA H200`. */
  gpuNames: string;
  topology?: GpuTopology;
}

/** Flags the experiment sets itself; a suite that sets them too would measure something else than it says. */
const SCALING_FLAGS = new Set([
  "-sm",
  "--split-mode",
  "-ts",
  "--tensor-split",
  "-mg",
  "--main-gpu",
  "-dev",
  "--device",
]);

/** Throws BadInputError when the suite's server flags set what the scaling experiment varies. */
export function checkScalingFlags(flags: readonly string[], subject = "target.serverFlags"): void {
  for (const f of flags) {
    const name = f.split("=")[0] ?? f;
    if (SCALING_FLAGS.has(name)) {
      throw new BadInputError(`${name} is set by the scaling experiment for each configuration`, {
        subject,
        hint: `remove ${name} from serverFlags and choose configurations in the scaling test, e.g. splitModes: [layer, row]`,
      });
    }
  }
  const env = flags.filter((f) => f.startsWith("CUDA_VISIBLE_DEVICES"));
  if (env.length) {
    throw new BadInputError("CUDA_VISIBLE_DEVICES is not a flag", {
      subject,
      hint: "the scaling experiment sets CUDA_VISIBLE_DEVICES per configuration; export it before tokengate to limit the GPUs it may use",
    });
  }
}

/** -ts ratios for `n` GPUs, or undefined when the spec does not apply to `n` (explicit ratios of another length). */
export function resolveTensorSplit(spec: TensorSplitPreset | number[], n: number): number[] | undefined {
  if (n < 2) return undefined;
  if (spec === "main-light") return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 2));
  if (spec === "main-heavy") return Array.from({ length: n }, (_, i) => (i === 0 ? 2 : 1));
  return spec.length === n ? [...spec] : undefined;
}

function ratioText(ratios: number[]): string {
  return ratios.map((r) => String(r)).join(":");
}

function isEven(ratios: number[]): boolean {
  return ratios.every((r) => r === ratios[0]);
}

/** `k`-element index combinations of 0..n-1 in lexicographic order. */
function* combinations(n: number, k: number): Generator<number[]> {
  const idx = Array.from({ length: k }, (_, i) => i);
  if (k > n) return;
  while (true) {
    yield [...idx];
    let i = k - 1;
    while (i >= 0 && idx[i] === n - k + i) i--;
    if (i < 0) return;
    idx[i]!++;
    for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1]! + 1;
  }
}

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

/** Subsets compared beyond this many fall back to the first GPUs (a 32-GPU host would otherwise take long). */
const MAX_SUBSETS = 50_000;

/**
 * The best-connected `n` of the visible GPUs: the subset whose weakest pair link is best (NVLink over PCIe, fewer
 * hops over more), then the best total, then the lowest indices. Without a topology, the first `n`.
 */
export function chooseDevices(visible: VisibleGpu[], topology: GpuTopology | undefined, n: number): VisibleGpu[] {
  const rows = visible.map((g) => topologyRow(topology, g.index));
  if (!topology || n < 2 || rows.some((r) => r === undefined) || binomial(visible.length, n) > MAX_SUBSETS) {
    return visible.slice(0, n);
  }
  let best: { pick: number[]; min: number; sum: number } | undefined;
  for (const pick of combinations(visible.length, n)) {
    let min = Number.POSITIVE_INFINITY;
    let sum = 0;
    for (let a = 0; a < pick.length; a++) {
      for (let b = a + 1; b < pick.length; b++) {
        const s = linkScore(topology.links[rows[pick[a]!]!]?.[rows[pick[b]!]!] ?? "");
        min = Math.min(min, s);
        sum += s;
      }
    }
    if (!best || min > best.min || (min === best.min && sum > best.sum)) best = { pick, min, sum };
  }
  return best!.pick.map((i) => visible[i]!);
}

function countNames(gpus: VisibleGpu[]): string {
  const counts = new Map<string, number>();
  for (const g of gpus) counts.set(g.name, (counts.get(g.name) ?? 0) + 1);
  return [...counts.entries()].map(([name, c]) => `${c}x ${name}`).join(", ");
}

/**
 * Which configurations to measure: the smallest GPU count first (the reference for speedup), then larger subsets,
 * each with every split mode evenly and then with every tensor split that fits it. With no GPU: one `cpu` point.
 * With one GPU: one `gpu1` point. Never fails for lack of GPUs: what cannot be measured is listed in `skipped`.
 */
export function planScaling(
  test: Pick<ScalingTest, "gpus" | "splitModes" | "tensorSplits">,
  inventory: GpuInventory,
): ScalingPlan {
  const visible = inventory.visible;
  const topology = inventory.topology;
  const notes = [...inventory.notes];
  const counts = [...new Set(test.gpus)].sort((a, b) => a - b);
  const skipped: ScalingPlan["skipped"] = [];
  const points: PlannedPoint[] = [];
  const base = {
    skipped,
    notes,
    visibleGpus: visible.length,
    gpuNames: countNames(visible),
    ...(topology ? { topology } : {}),
  };

  if (visible.length === 0) {
    for (const n of counts) skipped.push({ gpus: n, reason: "no GPU visible: measured on the CPU instead" });
    points.push({ id: "cpu", label: "cpu", gpus: 0, devices: [], flags: [], links: "" });
    return { points, ...base };
  }

  const usedSplits = new Set<number>();
  for (const n of counts) {
    if (n > visible.length) {
      skipped.push({
        gpus: n,
        reason: `only ${visible.length} GPU${visible.length === 1 ? "" : "s"} visible`,
      });
      continue;
    }
    const chosen = chooseDevices(visible, topology, n);
    const rows = chosen.map((g) => topologyRow(topology, g.index)).filter((r): r is number => r !== undefined);
    const common = {
      gpus: n,
      devices: chosen.map((g) => g.index),
      cudaVisibleDevices: chosen.map((g) => g.cudaId).join(","),
      links: rows.length === chosen.length ? linkText(topology, rows) : "",
    };
    if (n === 1) {
      // One GPU: nothing to split. llama.cpp's default layer split over one device is the whole model on it.
      points.push({ id: "gpu1", label: "1", flags: [], ...common });
      continue;
    }
    const seen = new Set<string>();
    const add = (mode: SplitMode, split?: { ratios: number[]; name: string; preset: boolean }) => {
      const flags = ["-sm", mode, ...(split ? ["-ts", split.ratios.join(",")] : [])];
      const key = flags.join(" ");
      if (seen.has(key)) return;
      seen.add(key);
      const suffix = !split ? "" : split.preset ? `-${split.name}` : `-ts${split.ratios.join("-")}`;
      points.push({
        id: `gpu${n}-${mode}${suffix}`,
        label: `${n} ${mode}${split ? ` ${split.name}` : ""}`,
        splitMode: mode,
        ...(split ? { tensorSplit: split.ratios, tensorSplitName: split.name } : {}),
        flags,
        ...common,
      });
    };
    for (const mode of test.splitModes) add(mode);
    for (const [k, spec] of test.tensorSplits.entries()) {
      const ratios = resolveTensorSplit(spec, n);
      if (!ratios) continue;
      usedSplits.add(k);
      // Even ratios are the even split already measured.
      if (isEven(ratios)) continue;
      const preset = typeof spec === "string";
      const name = preset ? spec : ratioText(ratios);
      for (const mode of test.splitModes) add(mode, { ratios, name, preset });
    }
  }
  for (const [k, spec] of test.tensorSplits.entries()) {
    if (typeof spec !== "string" && !usedSplits.has(k)) {
      notes.push(`tensor split ${ratioText(spec)} fits no measured subset (it needs ${spec.length} GPUs)`);
    }
  }
  return { points, ...base };
}

// ---------------------------------------------------------------------------------------------------------------
// Figures per configuration (what the report and results.json `extra.points` hold)

export interface PhaseFigures {
  requests: RequestCounts;
  outputTokensPerS?: number;
  requestsPerS?: number;
  ttftP50Ms?: number;
  ttftP95Ms?: number;
  e2eP50Ms?: number;
  e2eP95Ms?: number;
  tpotP50Ms?: number;
}

export interface ScalingPoint extends PlannedPoint {
  /** ok: measured; failed: the server did not start or every request failed; aborted: the run was stopped. */
  status: "ok" | "failed" | "aborted";
  /** First line of why it failed or stopped. */
  error?: string;
  /** Server start to healthy, s (model load and GPU set-up). */
  loadS?: number;
  /** CUDA devices the server itself reported (`ggml_cuda_init: found N CUDA devices`); absent for CPU builds. */
  serverGpus?: number;
  throughput?: PhaseFigures;
  latency?: PhaseFigures;
  /** output tok/s over the reference point's. */
  speedup?: number;
  /** speedup / (gpus / reference gpus): 1 is linear scaling. */
  efficiency?: number;
  /** The server's own view of the throughput phase (llama-server /metrics counter deltas). */
  server?: { decodeTokensPerS?: number; tokensPerDecodeCall?: number; promptTokensPerS?: number };
}

/** What results.json's `extra` holds for a scaling test. */
export interface ScalingExtra {
  points: ScalingPoint[];
  /** id of the point speedups are relative to (the fewest GPUs measured). */
  reference?: string;
  /** id of the point whose metrics are the test's headline metrics (the first of the most GPUs measured). */
  headline?: string;
  visibleGpus: number;
  gpuNames: string;
  topology?: string;
  cudaVisibleDevices?: string;
  skipped: ScalingPlan["skipped"];
  notes: string[];
}

const stat = (m: Metrics, key: string, s: "mean" | "p50" | "p95"): number | undefined => {
  const v = m[key]?.summary[s];
  return v === undefined || !Number.isFinite(v) ? undefined : v;
};

/** The figures a phase's metrics give (per-request percentiles over every trial; aggregate rates as trial means). */
export function phaseFigures(metrics: Metrics, requests: RequestCounts): PhaseFigures {
  const out: PhaseFigures = { requests };
  const set = (k: keyof Omit<PhaseFigures, "requests">, v: number | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set("outputTokensPerS", stat(metrics, "output_tokens_per_s", "mean"));
  set("requestsPerS", stat(metrics, "requests_per_s", "mean"));
  set("ttftP50Ms", stat(metrics, "ttft_ms", "p50"));
  set("ttftP95Ms", stat(metrics, "ttft_ms", "p95"));
  set("e2eP50Ms", stat(metrics, "e2e_ms", "p50"));
  set("e2eP95Ms", stat(metrics, "e2e_ms", "p95"));
  set("tpotP50Ms", stat(metrics, "tpot_ms", "p50"));
  return out;
}

/** The reference point: the first measured point with the fewest GPUs. */
export function referencePoint(points: ScalingPoint[]): ScalingPoint | undefined {
  const ok = points.filter((p) => p.status === "ok" && (p.throughput?.outputTokensPerS ?? 0) > 0);
  let ref: ScalingPoint | undefined;
  for (const p of ok) if (!ref || p.gpus < ref.gpus) ref = p;
  return ref;
}

/** The headline point: the first measured point with the most GPUs (plan order puts the even layer split first). */
export function headlinePoint(points: ScalingPoint[]): ScalingPoint | undefined {
  let head: ScalingPoint | undefined;
  for (const p of points) if (p.status === "ok" && (!head || p.gpus > head.gpus)) head = p;
  return head;
}

/**
 * Speedup and efficiency of each measured point against the reference: speedup = output tok/s / reference's;
 * efficiency = speedup / (GPUs / reference GPUs), so 1 (100%) is linear scaling. The CPU point has neither (there is
 * nothing to scale). Returns new points; the input is not changed.
 */
export function scalingFigures(points: ScalingPoint[]): { points: ScalingPoint[]; reference?: string } {
  const ref = referencePoint(points);
  const refTput = ref?.throughput?.outputTokensPerS;
  if (!ref || !refTput || ref.gpus === 0) {
    return { points: points.map((p) => ({ ...p })), ...(ref ? { reference: ref.id } : {}) };
  }
  return {
    reference: ref.id,
    points: points.map((p) => {
      const tput = p.throughput?.outputTokensPerS;
      if (p.status !== "ok" || tput === undefined || p.gpus === 0) return { ...p };
      const speedup = tput / refTput;
      return { ...p, speedup, efficiency: speedup / (p.gpus / ref.gpus) };
    }),
  };
}
