import { arch, cpus, platform, release, totalmem } from "node:os";
import type { TargetFingerprint } from "../target/types.js";
import { runCommand } from "../util/run-command.js";
import { detectGpuInventory, visibleTopology } from "./gpu-topology.js";
import type { EnvironmentFingerprint } from "./results.js";

/** GPUs as nvidia-smi reports them (empty without NVIDIA GPUs or without nvidia-smi). */
export async function detectGpus(): Promise<{ gpus: EnvironmentFingerprint["gpus"]; cuda?: string }> {
  try {
    const r = await runCommand("nvidia-smi", [
      "--query-gpu=name,driver_version,memory.total",
      "--format=csv,noheader,nounits",
    ]);
    if (r.code !== 0) return { gpus: [] };
    const gpus = r.tail
      .filter((l) => l.trim())
      .map((l) => {
        const [name = "", driver, mem] = l.split(",").map((s) => s.trim());
        return { name, ...(driver ? { driver } : {}), ...(mem ? { memoryMiB: Number(mem) } : {}) };
      });
    const v = await runCommand("nvidia-smi", []);
    const cuda = v.tail.join("\n").match(/CUDA Version:\s*([\d.]+)/)?.[1];
    return { gpus, ...(cuda ? { cuda } : {}) };
  } catch {
    return { gpus: [] };
  }
}

/** What the measurement ran on: baselines are only compared with runs on the same environment. */
export async function environmentFingerprint(target: TargetFingerprint): Promise<EnvironmentFingerprint> {
  const cpu = cpus();
  const [{ gpus, cuda }, inventory] = await Promise.all([detectGpus(), detectGpuInventory()]);
  // Multi-GPU results depend on how many GPUs the run could use and how they are linked (NVLink vs PCIe).
  const gpuTopology = visibleTopology(inventory);
  return {
    os: `${platform()} ${release()}`,
    arch: arch(),
    cpuModel: cpu[0]?.model.trim() ?? "unknown",
    cpuCount: cpu.length,
    memoryBytes: totalmem(),
    node: process.version,
    gpus,
    gpuCount: inventory.visible.length,
    ...(gpuTopology ? { gpuTopology } : {}),
    ...(cuda ? { cuda } : {}),
    target,
  };
}
