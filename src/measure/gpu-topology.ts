import { runCommand } from "../util/run-command.js";
import type { GpuTopology } from "./results.js";

/**
 * Which NVIDIA GPUs a run may use and how they are linked, from `nvidia-smi -L` and `nvidia-smi topo -m`. Parsing is
 * pure (tested on fixtures written from the tools' formats); `detectGpuInventory` is the only part that runs anything.
 *
 * Index spaces: nvidia-smi numbers GPUs in PCI bus order; CUDA numbers them fastest-first unless
 * `CUDA_DEVICE_ORDER=PCI_BUS_ID`. The two agree on machines of identical GPUs, and an integer CUDA_VISIBLE_DEVICES
 * entry is read as nvidia-smi's index here. Subsets tokengate chooses are written as GPU UUIDs where nvidia-smi gave
 * them, which mean the same GPU in every index space.
 */

/** One line of `nvidia-smi -L`: `GPU 0: NVIDIA H200 (UUID: GPU-4e0d...)`, with its MIG instances if any. */
export interface ListedGpu {
  index: number;
  name: string;
  uuid?: string;
  /** MIG instances (`  MIG 3g.71gb     Device  0: (UUID: MIG-...)`); a GPU in MIG mode is not usable as a whole. */
  mig: Array<{ profile: string; device: number; uuid?: string }>;
}

/** A GPU the run may use. */
export interface VisibleGpu {
  /** nvidia-smi's index (the row `GPU<index>` of the topology matrix). */
  index: number;
  name: string;
  uuid?: string;
  /** How to name it in CUDA_VISIBLE_DEVICES: the UUID where known, else the index. */
  cudaId: string;
}

export interface GpuInventory {
  /** GPUs the run may use, in the order CUDA_VISIBLE_DEVICES lists them (nvidia-smi's order when it is unset). */
  visible: VisibleGpu[];
  /** Every GPU nvidia-smi lists. */
  listed: ListedGpu[];
  /** The matrix for all listed GPUs (absent without nvidia-smi or with fewer than 2 GPUs). */
  topology?: GpuTopology;
  /** The CUDA_VISIBLE_DEVICES tokengate runs under, when set. */
  cudaVisibleDevices?: string;
  /** Why the inventory is what it is: no nvidia-smi, GPUs in MIG mode, entries CUDA would ignore. */
  notes: string[];
}

// nvidia-smi underlines the header row with terminal escapes in some versions, also when writing to a pipe.
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

const GPU_LINE = /^GPU\s+(\d+):\s*(.*?)\s*(?:\(UUID:\s*([^)\s]+)\s*\))?\s*$/;
const MIG_LINE = /^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s*(?:\(UUID:\s*([^)\s]+)\s*\))?/;

/** Parses `nvidia-smi -L`. Lines it does not know are skipped. */
export function parseGpuList(text: string): ListedGpu[] {
  const out: ListedGpu[] = [];
  for (const raw of stripAnsi(text).split(/\r?\n/)) {
    const gpu = GPU_LINE.exec(raw);
    if (gpu) {
      out.push({
        index: Number(gpu[1]),
        name: gpu[2] ?? "",
        ...(gpu[3] ? { uuid: gpu[3] } : {}),
        mig: [],
      });
      continue;
    }
    const mig = MIG_LINE.exec(raw);
    const last = out[out.length - 1];
    if (mig && last) {
      last.mig.push({ profile: mig[1] ?? "", device: Number(mig[2]), ...(mig[3] ? { uuid: mig[3] } : {}) });
    }
  }
  return out;
}

const EXTRA_COLUMNS = ["CPU Affinity", "NUMA Affinity", "GPU NUMA ID"] as const;

/**
 * Parses `nvidia-smi topo -m`: a header of column names (GPUs, then NICs, then `CPU Affinity`, `NUMA Affinity` and in
 * newer versions `GPU NUMA ID`), one row per device, a blank line, then the legend. Cells are tab-separated in current
 * versions (with an empty cell before `GPU NUMA ID` on some) and space-aligned in old ones; no cell holds a space, so
 * rows are split on whitespace. Returns the GPU part, or undefined when the text has no matrix.
 */
export function parseTopology(text: string): GpuTopology | undefined {
  const lines = stripAnsi(text).split(/\r?\n/);
  // The header starts with an empty cell (a tab or spaces), the rows with their device's name.
  const headerAt = lines.findIndex((l) => /^\s+GPU\d+(\s|$)/.test(l));
  if (headerAt < 0) return undefined;
  const rows: Array<{ label: string; cells: string[] }> = [];
  for (const line of lines.slice(headerAt + 1)) {
    if (!line.trim() || /^\s*Legend/.test(line)) break;
    const cells = line.trim().split(/\s+/);
    const label = cells.shift();
    if (label) rows.push({ label, cells });
  }
  const gpuRows = rows.filter((r) => /^GPU\d+$/.test(r.label));
  if (gpuRows.length === 0) return undefined;
  // The matrix is square over all devices (GPUs and NICs): as many link cells as rows.
  const columns = rows.length;
  const header = lines[headerAt] ?? "";
  const extras = EXTRA_COLUMNS.filter((c) => header.includes(c));
  const links = gpuRows.map((r) => gpuRows.map((_, j) => normalizeLink(r.cells[j] ?? "")));
  const rest = gpuRows.map((r) => r.cells.slice(columns));
  const column = (name: (typeof EXTRA_COLUMNS)[number]): string[] | undefined => {
    const k = extras.indexOf(name);
    if (k < 0) return undefined;
    const values = rest.map((cells) => cells[k] ?? "");
    return values.every((v) => v === "") ? undefined : values;
  };
  const cpuAffinity = column("CPU Affinity");
  const numaAffinity = column("NUMA Affinity");
  const gpus = gpuRows.map((r) => r.label);
  const topology: GpuTopology = {
    gpus,
    links,
    ...(cpuAffinity ? { cpuAffinity } : {}),
    ...(numaAffinity ? { numaAffinity } : {}),
    summary: "",
  };
  topology.summary = topologySummary(topology);
  return topology;
}

function normalizeLink(cell: string): string {
  const c = cell.trim().toUpperCase();
  return c === "X" ? "X" : c;
}

/**
 * How good a link is, for choosing subsets: NVLink (more bonded links better) over PCIe paths from the closest (PIX:
 * one bridge) to the farthest (SYS: across NUMA nodes). Unknown codes rank lowest.
 */
export function linkScore(code: string): number {
  const nv = /^NV(\d+)$/.exec(code);
  if (nv) return 100 + Number(nv[1]);
  return { PIX: 50, PXB: 40, PHB: 30, NODE: 20, SYS: 10 }[code] ?? 0;
}

/** Link codes between each pair of the given GPUs (topology row indices), most frequent first: `NV18 x28`. */
export function linkCounts(topology: GpuTopology, rows?: number[]): Array<{ link: string; pairs: number }> {
  const idx = rows ?? topology.gpus.map((_, i) => i);
  const counts = new Map<string, number>();
  for (let a = 0; a < idx.length; a++) {
    for (let b = a + 1; b < idx.length; b++) {
      const link = topology.links[idx[a]!]?.[idx[b]!] ?? "?";
      counts.set(link, (counts.get(link) ?? 0) + 1);
    }
  }
  return [...counts.entries()]
    .map(([link, pairs]) => ({ link, pairs }))
    .sort((x, y) => y.pairs - x.pairs || linkScore(y.link) - linkScore(x.link));
}

/** `NV18` when every pair has the same link, else `NV18 x4, SYS x2`; empty for fewer than 2 GPUs. */
export function linkText(topology: GpuTopology | undefined, rows: number[]): string {
  if (!topology || rows.length < 2) return "";
  const counts = linkCounts(topology, rows);
  return counts.length === 1 ? counts[0]!.link : counts.map((c) => `${c.link} x${c.pairs}`).join(", ");
}

export function topologySummary(topology: GpuTopology): string {
  const n = topology.gpus.length;
  const counts = linkCounts(topology);
  const pairs = counts.length ? `; GPU pairs: ${counts.map((c) => `${c.link} x${c.pairs}`).join(", ")}` : "";
  const numa = topology.numaAffinity ? new Set(topology.numaAffinity).size : 0;
  return `${n} GPU${n === 1 ? "" : "s"}${pairs}${numa > 1 ? `; ${numa} NUMA nodes` : ""}`;
}

/** The topology of some GPUs only (rows/columns by topology index), e.g. those CUDA_VISIBLE_DEVICES leaves. */
export function restrictTopology(topology: GpuTopology, rows: number[]): GpuTopology {
  const pick = <T>(a: T[] | undefined) => (a ? rows.map((i) => a[i]!) : undefined);
  const cpuAffinity = pick(topology.cpuAffinity);
  const numaAffinity = pick(topology.numaAffinity);
  const out: GpuTopology = {
    gpus: rows.map((i) => topology.gpus[i]!),
    links: rows.map((i) => rows.map((j) => topology.links[i]?.[j] ?? "?")),
    ...(cpuAffinity ? { cpuAffinity } : {}),
    ...(numaAffinity ? { numaAffinity } : {}),
    summary: "",
  };
  out.summary = topologySummary(out);
  return out;
}

/**
 * The GPUs CUDA will show a program started with `CUDA_VISIBLE_DEVICES=value`: entries are indices or (prefixes of)
 * UUIDs; CUDA stops at the first entry that names no device (or one already named), so `0,7,1` on a 4-GPU machine
 * gives GPU 0 only, and `-1` or an empty value gives none. GPUs in MIG mode are left out: as a whole they run nothing.
 */
export function visibleGpus(
  listed: ListedGpu[],
  cudaVisibleDevices: string | undefined,
): { visible: VisibleGpu[]; notes: string[] } {
  const notes: string[] = [];
  const asVisible = (g: ListedGpu): VisibleGpu => ({
    index: g.index,
    name: g.name,
    ...(g.uuid ? { uuid: g.uuid } : {}),
    cudaId: g.uuid ?? String(g.index),
  });
  let chosen: ListedGpu[];
  if (cudaVisibleDevices === undefined) {
    chosen = listed;
  } else {
    chosen = [];
    const entries = cudaVisibleDevices.split(",").map((e) => e.trim());
    for (const [i, entry] of entries.entries()) {
      const g = /^\d+$/.test(entry)
        ? listed.find((x) => x.index === Number(entry))
        : entry.length > 4
          ? single(listed.filter((x) => x.uuid?.startsWith(entry)))
          : undefined;
      if (!g || chosen.includes(g)) {
        if (entry !== "" || entries.length > 1) {
          notes.push(
            `CUDA_VISIBLE_DEVICES=${cudaVisibleDevices}: entry ${JSON.stringify(entry)} names no usable GPU; CUDA ignores it and ${entries.length - i - 1 > 0 ? "the entries after it" : "nothing after it"}`,
          );
        }
        break;
      }
      chosen.push(g);
    }
  }
  const mig = chosen.filter((g) => g.mig.length > 0);
  if (mig.length) {
    notes.push(
      `GPU ${mig.map((g) => g.index).join(", ")} ${mig.length === 1 ? "is" : "are"} in MIG mode and left out (MIG instances are not whole GPUs)`,
    );
  }
  return { visible: chosen.filter((g) => g.mig.length === 0).map(asVisible), notes };
}

function single<T>(xs: T[]): T | undefined {
  return xs.length === 1 ? xs[0] : undefined;
}

/** Runs a command and returns its whole stdout+stderr (runCommand keeps only a tail; a topology can be longer). */
export type CommandText = (cmd: string, args: string[]) => Promise<{ code: number | null; text: string }>;

const runForText: CommandText = async (cmd, args) => {
  const lines: string[] = [];
  const r = await runCommand(cmd, args, { onLine: (l) => lines.push(l) });
  return { code: r.code, text: lines.join("\n") };
};

/**
 * Asks nvidia-smi which GPUs there are and how they are linked, narrowed by the CUDA_VISIBLE_DEVICES in `env`. Never
 * throws: a machine without nvidia-smi (or whose nvidia-smi fails) has no GPUs, said in `notes`.
 */
export async function detectGpuInventory(
  env: NodeJS.ProcessEnv = process.env,
  run: CommandText = runForText,
): Promise<GpuInventory> {
  const cvd = env.CUDA_VISIBLE_DEVICES;
  const base = { ...(cvd === undefined ? {} : { cudaVisibleDevices: cvd }) };
  let listed: ListedGpu[];
  try {
    const l = await run("nvidia-smi", ["-L"]);
    if (l.code !== 0) {
      return { visible: [], listed: [], notes: [`nvidia-smi -L exited with code ${l.code}: no GPU used`], ...base };
    }
    listed = parseGpuList(l.text);
  } catch {
    return { visible: [], listed: [], notes: ["no nvidia-smi on PATH: no GPU used"], ...base };
  }
  const { visible, notes } = visibleGpus(listed, cvd);
  let topology: GpuTopology | undefined;
  if (listed.length > 1) {
    try {
      const t = await run("nvidia-smi", ["topo", "-m"]);
      topology = t.code === 0 ? parseTopology(t.text) : undefined;
      if (!topology) notes.push("nvidia-smi topo -m gave no matrix: GPU subsets are taken in index order");
    } catch {
      notes.push("nvidia-smi topo -m failed: GPU subsets are taken in index order");
    }
  }
  return { visible, listed, ...(topology ? { topology } : {}), notes, ...base };
}

/** The topology row of a GPU (by nvidia-smi index), when the matrix has it. */
export function topologyRow(topology: GpuTopology | undefined, index: number): number | undefined {
  if (!topology) return undefined;
  const row = topology.gpus.indexOf(`GPU${index}`);
  return row < 0 ? undefined : row;
}

/** The matrix of the visible GPUs only (what the environment fingerprint records). */
export function visibleTopology(inv: GpuInventory): GpuTopology | undefined {
  if (!inv.topology || inv.visible.length < 2) return undefined;
  const rows = inv.visible.map((g) => topologyRow(inv.topology, g.index));
  if (rows.some((r) => r === undefined)) return undefined;
  return restrictTopology(inv.topology, rows as number[]);
}
