import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type CommandText,
  detectGpuInventory,
  linkScore,
  linkText,
  parseGpuList,
  parseTopology,
  restrictTopology,
  visibleGpus,
  visibleTopology,
} from "../../src/measure/gpu-topology.js";

/** nvidia-smi output written from the tool's formats (current: tabs, underlined header; old: space-aligned). */
const fixture = (name: string) => readFileSync(join(import.meta.dirname, "../fixtures/nvidia-smi", name), "utf8");

describe("nvidia-smi topo -m", () => {
  it("reads an HGX H200 x8 matrix: escapes stripped, NIC columns dropped, affinities per GPU", () => {
    const t = parseTopology(fixture("topo-hgx-h200x8.txt"))!;
    expect(t.gpus).toEqual(["GPU0", "GPU1", "GPU2", "GPU3", "GPU4", "GPU5", "GPU6", "GPU7"]);
    expect(t.links).toHaveLength(8);
    for (const [i, row] of t.links.entries()) {
      expect(row).toHaveLength(8);
      expect(row[i]).toBe("X");
      expect(row.filter((c) => c === "NV18")).toHaveLength(7);
    }
    expect(t.cpuAffinity).toEqual([...Array(4).fill("0-47,96-143"), ...Array(4).fill("48-95,144-191")]);
    // The empty cell before `GPU NUMA ID` must not shift the NUMA column onto `N/A`.
    expect(t.numaAffinity).toEqual(["0", "0", "0", "0", "1", "1", "1", "1"]);
    expect(t.summary).toBe("8 GPUs; GPU pairs: NV18 x28; 2 NUMA nodes");
  });

  it("reads the old space-aligned format with a NIC named by its device", () => {
    const t = parseTopology(fixture("topo-pcie-old.txt"))!;
    expect(t.gpus).toHaveLength(8);
    expect(t.links[0]).toEqual(["X", "PIX", "PHB", "PHB", "SYS", "SYS", "SYS", "SYS"]);
    expect(t.links[7]).toEqual(["SYS", "SYS", "SYS", "SYS", "PHB", "PHB", "PIX", "X"]);
    expect(t.cpuAffinity?.[0]).toBe("0-9,20-29");
    expect(t.cpuAffinity?.[5]).toBe("10-19,30-39");
    expect(t.numaAffinity).toBeUndefined();
    expect(t.summary).toBe("8 GPUs; GPU pairs: SYS x16, PHB x8, PIX x4");
  });

  it("reads 2-GPU and 1-GPU matrices and refuses text without one", () => {
    const two = parseTopology(fixture("topo-2gpu-phb.txt"))!;
    expect(two.links).toEqual([
      ["X", "PHB"],
      ["PHB", "X"],
    ]);
    expect(two.numaAffinity).toEqual(["0", "0"]);
    const one = parseTopology(fixture("topo-1gpu.txt"))!;
    expect(one.gpus).toEqual(["GPU0"]);
    expect(one.summary).toBe("1 GPU");
    expect(parseTopology("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")).toBe(
      undefined,
    );
  });

  it("ranks links NVLink (more is better) over PCIe from near to far", () => {
    const order = ["NV18", "NV2", "NV1", "PIX", "PXB", "PHB", "NODE", "SYS", "N/A"];
    const scores = order.map(linkScore);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(new Set(scores).size).toBe(order.length);
  });

  it("describes the links of a subset and restricts the matrix", () => {
    const t = parseTopology(fixture("topo-dgx1-cube-mesh.txt"))!;
    expect(linkText(t, [0, 3])).toBe("NV2");
    expect(linkText(t, [0, 5])).toBe("SYS");
    expect(linkText(t, [0, 1, 2, 3])).toBe("NV2 x3, NV1 x3");
    expect(linkText(t, [0])).toBe("");
    const r = restrictTopology(t, [4, 7]);
    expect(r.gpus).toEqual(["GPU4", "GPU7"]);
    expect(r.links).toEqual([
      ["X", "NV2"],
      ["NV2", "X"],
    ]);
    expect(r.numaAffinity).toEqual(["1", "1"]);
  });
});

describe("nvidia-smi -L and CUDA_VISIBLE_DEVICES", () => {
  const h200 = parseGpuList(fixture("list-h200x8.txt"));

  it("lists GPUs with names and UUIDs, and MIG instances under their GPU", () => {
    expect(h200).toHaveLength(8);
    expect(h200[3]).toMatchObject({ index: 3, name: "NVIDIA H200", mig: [] });
    expect(h200[3]!.uuid).toMatch(/^GPU-[0-9a-f]{8}-/);
    const mig = parseGpuList(fixture("list-mig.txt"));
    expect(mig.map((g) => g.name)).toEqual(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]);
    expect(mig[0]!.mig.map((m) => [m.profile, m.device])).toEqual([
      ["3g.40gb", 0],
      ["3g.40gb", 1],
    ]);
    expect(mig[1]!.mig).toEqual([]);
  });

  it("applies CUDA_VISIBLE_DEVICES like CUDA: indices, UUID prefixes, order kept, stop at the first bad entry", () => {
    expect(visibleGpus(h200, undefined).visible.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(visibleGpus(h200, "5,2").visible.map((g) => g.index)).toEqual([5, 2]);
    const byUuid = visibleGpus(h200, `${h200[6]!.uuid!.slice(0, 12)},1`);
    expect(byUuid.visible.map((g) => g.index)).toEqual([6, 1]);
    expect(byUuid.visible[0]!.cudaId).toBe(h200[6]!.uuid);
    const bad = visibleGpus(h200, "0,9,1");
    expect(bad.visible.map((g) => g.index)).toEqual([0]);
    expect(bad.notes[0]).toContain('entry "9" names no usable GPU');
    expect(visibleGpus(h200, "1,1").visible.map((g) => g.index)).toEqual([1]);
    expect(visibleGpus(h200, "").visible).toEqual([]);
    expect(visibleGpus(h200, "").notes).toEqual([]);
    expect(visibleGpus(h200, "-1").visible).toEqual([]);
  });

  it("leaves GPUs in MIG mode out, saying so", () => {
    const r = visibleGpus(parseGpuList(fixture("list-mig.txt")), undefined);
    expect(r.visible.map((g) => g.index)).toEqual([1]);
    expect(r.notes.join(" ")).toContain("GPU 0 is in MIG mode");
  });
});

describe("detectGpuInventory", () => {
  /** Answers as nvidia-smi would on the machine whose output the fixtures hold. */
  const smi =
    (list: string, topo: string): CommandText =>
    async (_cmd, args) =>
      args[0] === "-L" ? { code: 0, text: fixture(list) } : { code: 0, text: fixture(topo) };

  it("combines the list, the topology and CUDA_VISIBLE_DEVICES", async () => {
    const inv = await detectGpuInventory(
      { CUDA_VISIBLE_DEVICES: "4,5,6,7" },
      smi("list-h200x8.txt", "topo-hgx-h200x8.txt"),
    );
    expect(inv.listed).toHaveLength(8);
    expect(inv.visible.map((g) => g.index)).toEqual([4, 5, 6, 7]);
    expect(inv.cudaVisibleDevices).toBe("4,5,6,7");
    expect(inv.topology?.gpus).toHaveLength(8);
    const vt = visibleTopology(inv)!;
    expect(vt.gpus).toEqual(["GPU4", "GPU5", "GPU6", "GPU7"]);
    expect(vt.summary).toBe("4 GPUs; GPU pairs: NV18 x6");
  });

  it("has no GPU where nvidia-smi is missing or fails, and says why", async () => {
    const missing = await detectGpuInventory({}, async () => {
      throw new Error("ENOENT");
    });
    expect(missing.visible).toEqual([]);
    expect(missing.notes[0]).toContain("no nvidia-smi");
    const failing = await detectGpuInventory({}, async () => ({ code: 9, text: "driver not loaded" }));
    expect(failing.visible).toEqual([]);
    expect(failing.notes[0]).toContain("exited with code 9");
  });
});
