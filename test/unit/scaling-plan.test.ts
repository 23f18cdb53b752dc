import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type ScalingTest, scalingTestSchema, suiteSchema } from "../../src/config/suite-schema.js";
import {
  type CommandText,
  detectGpuInventory,
  type GpuInventory,
  parseGpuList,
  visibleGpus,
} from "../../src/measure/gpu-topology.js";
import type { RequestCounts } from "../../src/measure/results.js";
import { runScalingTest, type ScalingContext } from "../../src/suite/scaling.js";
import {
  checkScalingFlags,
  chooseDevices,
  headlinePoint,
  planScaling,
  resolveTensorSplit,
  type ScalingPoint,
  scalingFigures,
} from "../../src/suite/scaling-plan.js";
import { BadInputError } from "../../src/util/errors.js";

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "../fixtures/nvidia-smi", name), "utf8");

/** An inventory as detectGpuInventory builds it from nvidia-smi output of the fixtures' machines. */
function inventory(list: string, topo: string | undefined, cvd?: string): Promise<GpuInventory> {
  const smi: CommandText = async (_cmd, args) =>
    args[0] === "-L"
      ? { code: 0, text: fixture(list) }
      : topo
        ? { code: 0, text: fixture(topo) }
        : { code: 1, text: "" };
  return detectGpuInventory(cvd === undefined ? {} : { CUDA_VISIBLE_DEVICES: cvd }, smi);
}

const DEFAULTS: ScalingTest = scalingTestSchema.parse({ kind: "scaling" });
const NONE: GpuInventory = { visible: [], listed: [], notes: ["no nvidia-smi on PATH: no GPU used"] };

describe("scaling test schema", () => {
  it("defaults to 1/2/4/8 GPUs, layer and row splits, one uneven split, and both phases", () => {
    expect(DEFAULTS).toMatchObject({
      gpus: [1, 2, 4, 8],
      splitModes: ["layer", "row"],
      tensorSplits: ["main-light"],
      throughput: { concurrency: 8, requests: 32, promptTokens: 128, warmup: 4 },
      latency: { promptTokens: 128, repetitions: 5, warmup: 1 },
    });
  });

  it("is a suite test kind, and refuses unknown split modes and one-GPU ratios", () => {
    const suite = suiteSchema.parse({ tests: [{ kind: "scaling", gpus: [1, 2], tensorSplits: [[3, 1]] }] });
    expect(suite.tests[0]!.kind).toBe("scaling");
    expect(scalingTestSchema.safeParse({ kind: "scaling", splitModes: ["pipeline"] }).success).toBe(false);
    expect(scalingTestSchema.safeParse({ kind: "scaling", tensorSplits: [[1]] }).success).toBe(false);
    expect(scalingTestSchema.safeParse({ kind: "scaling", gpus: [0] }).success).toBe(false);
  });
});

describe("planScaling", () => {
  it("with no GPU: one cpu point, every GPU count skipped with the reason", () => {
    const plan = planScaling(DEFAULTS, NONE);
    expect(plan.points).toEqual([{ id: "cpu", label: "cpu", gpus: 0, devices: [], flags: [], links: "" }]);
    expect(plan.skipped.map((s) => s.gpus)).toEqual([1, 2, 4, 8]);
    expect(plan.skipped[0]!.reason).toContain("no GPU visible");
    expect(plan.notes).toEqual(["no nvidia-smi on PATH: no GPU used"]);
  });

  it("with one GPU: one gpu1 point without split flags, on that GPU's UUID", async () => {
    const inv = await inventory("list-h200x8.txt", "topo-hgx-h200x8.txt", "3");
    const plan = planScaling(DEFAULTS, inv);
    expect(plan.points).toHaveLength(1);
    expect(plan.points[0]).toMatchObject({ id: "gpu1", gpus: 1, devices: [3], flags: [], links: "" });
    expect(plan.points[0]!.cudaVisibleDevices).toBe(inv.listed[3]!.uuid);
    expect(plan.skipped).toEqual([
      { gpus: 2, reason: "only 1 GPU visible" },
      { gpus: 4, reason: "only 1 GPU visible" },
      { gpus: 8, reason: "only 1 GPU visible" },
    ]);
  });

  it("on 8 H200s: 1 GPU, then each larger subset with layer and row, even and main-light", async () => {
    const plan = planScaling(DEFAULTS, await inventory("list-h200x8.txt", "topo-hgx-h200x8.txt"));
    expect(plan.points.map((p) => p.id)).toEqual([
      "gpu1",
      "gpu2-layer",
      "gpu2-row",
      "gpu2-layer-main-light",
      "gpu2-row-main-light",
      "gpu4-layer",
      "gpu4-row",
      "gpu4-layer-main-light",
      "gpu4-row-main-light",
      "gpu8-layer",
      "gpu8-row",
      "gpu8-layer-main-light",
      "gpu8-row-main-light",
    ]);
    expect(plan.skipped).toEqual([]);
    expect(plan.gpuNames).toBe("8x NVIDIA H200");
    const row4 = plan.points.find((p) => p.id === "gpu4-row-main-light")!;
    expect(row4).toMatchObject({
      gpus: 4,
      devices: [0, 1, 2, 3],
      splitMode: "row",
      tensorSplit: [1, 2, 2, 2],
      tensorSplitName: "main-light",
      flags: ["-sm", "row", "-ts", "1,2,2,2"],
      links: "NV18",
      label: "4 row main-light",
    });
    expect(row4.cudaVisibleDevices!.split(",")).toHaveLength(4);
    expect(row4.cudaVisibleDevices!.startsWith("GPU-")).toBe(true);
    expect(plan.points.find((p) => p.id === "gpu8-layer")!.flags).toEqual(["-sm", "layer"]);
  });

  it("on 2 GPUs: counts above 2 are skipped; explicit ratios apply to subsets of their length only", async () => {
    const inv = await inventory("list-h200x8.txt", "topo-hgx-h200x8.txt", "6,7");
    const plan = planScaling(
      {
        gpus: [8, 1, 2, 2, 4],
        splitModes: ["layer"],
        tensorSplits: [[3, 1], [1, 1], [2, 1, 1, 1], "main-heavy"],
      },
      inv,
    );
    expect(plan.points.map((p) => p.id)).toEqual(["gpu1", "gpu2-layer", "gpu2-layer-ts3-1", "gpu2-layer-main-heavy"]);
    expect(plan.points[0]!.devices).toEqual([6]);
    expect(plan.points[1]!.devices).toEqual([6, 7]);
    // [1, 1] is the even split already measured; [2, 1, 1, 1] needs 4 GPUs.
    expect(plan.points.find((p) => p.id === "gpu2-layer-main-heavy")!.flags).toEqual(["-sm", "layer", "-ts", "2,1"]);
    expect(plan.skipped.map((s) => s.gpus)).toEqual([4, 8]);
    expect(plan.notes).toEqual(["tensor split 2:1:1:1 fits no measured subset (it needs 4 GPUs)"]);
  });

  it("chooses the best-connected subsets on a DGX-1 cube mesh and a PCIe box", async () => {
    const mesh = await inventory("list-h200x8.txt", "topo-dgx1-cube-mesh.txt");
    const pick = (inv: GpuInventory, n: number) => chooseDevices(inv.visible, inv.topology, n).map((g) => g.index);
    // NV2 pairs beat NV1 pairs; {0..3} is the first 4-set linked entirely by NVLink.
    expect(pick(mesh, 2)).toEqual([0, 3]);
    expect(pick(mesh, 4)).toEqual([0, 1, 2, 3]);
    const pcie = await inventory("list-h200x8.txt", "topo-pcie-old.txt", "0,2,3,4");
    // Of the visible 0,2,3,4: 2-3 share a PCIe switch (PIX); 0 and 4 sit on different NUMA nodes (SYS).
    expect(pick(pcie, 2)).toEqual([2, 3]);
    expect(pick(pcie, 3)).toEqual([0, 2, 3]);
    const plan = planScaling({ gpus: [2], splitModes: ["row"], tensorSplits: [] }, pcie);
    expect(plan.points[0]).toMatchObject({ devices: [2, 3], links: "PIX" });
  });

  it("without a topology (nvidia-smi topo fails): the first GPUs, said in the notes", async () => {
    const inv = await inventory("list-h200x8.txt", undefined, "7,1,2");
    expect(inv.notes.join(" ")).toContain("topo -m gave no matrix");
    const plan = planScaling({ gpus: [2], splitModes: ["layer"], tensorSplits: [] }, inv);
    expect(plan.points[0]).toMatchObject({ devices: [7, 1], links: "" });
  });

  it("leaves MIG GPUs out", () => {
    const listed = parseGpuList(fixture("list-mig.txt"));
    const v = visibleGpus(listed, undefined);
    const plan = planScaling(DEFAULTS, { listed, visible: v.visible, notes: v.notes });
    expect(plan.points.map((p) => p.id)).toEqual(["gpu1"]);
    expect(plan.points[0]!.devices).toEqual([1]);
    expect(plan.notes.join(" ")).toContain("MIG mode");
  });
});

describe("tensor splits and flags", () => {
  it("resolves presets per GPU count and explicit ratios by length", () => {
    expect(resolveTensorSplit("main-light", 4)).toEqual([1, 2, 2, 2]);
    expect(resolveTensorSplit("main-heavy", 2)).toEqual([2, 1]);
    expect(resolveTensorSplit("main-light", 1)).toBeUndefined();
    expect(resolveTensorSplit([3, 1], 2)).toEqual([3, 1]);
    expect(resolveTensorSplit([3, 1], 4)).toBeUndefined();
  });

  it("refuses suite flags that set what the experiment varies", () => {
    expect(() => checkScalingFlags(["-ngl", "99", "--parallel", "8"])).not.toThrow();
    for (const flags of [["-sm", "row"], ["--tensor-split=3,1"], ["-mg", "1"], ["--device", "CUDA0"]]) {
      let err: unknown;
      try {
        checkScalingFlags(flags);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BadInputError);
      expect((err as BadInputError).subject).toBe("target.serverFlags");
      expect((err as BadInputError).hint).toContain("splitModes");
    }
  });
});

describe("scaling figures", () => {
  const counts = (n: number): RequestCounts => ({
    attempted: n,
    succeeded: n,
    failed: 0,
    errors: {},
    shortfalls: 0,
  });
  const point = (id: string, gpus: number, tput: number | undefined, status: ScalingPoint["status"] = "ok") =>
    ({
      id,
      label: id,
      gpus,
      devices: [],
      flags: [],
      links: "",
      status,
      ...(tput === undefined ? {} : { throughput: { requests: counts(8), outputTokensPerS: tput } }),
    }) satisfies ScalingPoint;

  it("speedup over the 1-GPU point and efficiency per GPU", () => {
    const { points, reference } = scalingFigures([
      point("gpu1", 1, 100),
      point("gpu2-layer", 2, 180),
      point("gpu2-row", 2, 120),
      point("gpu4-layer", 4, 200),
      point("gpu4-row", 4, undefined, "failed"),
    ]);
    expect(reference).toBe("gpu1");
    expect(points.map((p) => p.speedup)).toEqual([1, 1.8, 1.2, 2, undefined]);
    expect(points.map((p) => p.efficiency)).toEqual([1, 0.9, 0.6, 0.5, undefined]);
    expect(headlinePoint(points)!.id).toBe("gpu4-layer");
  });

  it("relative to the smallest measured count when the 1-GPU point failed", () => {
    const { points, reference } = scalingFigures([
      point("gpu1", 1, undefined, "failed"),
      point("gpu2-layer", 2, 100),
      point("gpu4-layer", 4, 150),
    ]);
    expect(reference).toBe("gpu2-layer");
    expect(points[2]!.speedup).toBe(1.5);
    expect(points[2]!.efficiency).toBe(0.75);
  });

  it("the cpu point has neither speedup nor efficiency", () => {
    const { points, reference } = scalingFigures([point("cpu", 0, 50)]);
    expect(reference).toBe("cpu");
    expect(points[0]!.speedup).toBeUndefined();
    expect(points[0]!.efficiency).toBeUndefined();
  });
});

describe("runScalingTest without a llama-server target", () => {
  it("is a BadInputError that names the test and says which target it needs", async () => {
    const ctx = { testName: "scale" } as unknown as ScalingContext;
    const err = await runScalingTest(ctx, DEFAULTS, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).subject).toBe("tests: scale");
    expect((err as BadInputError).hint).toContain("llama-server");
  });

  it("refuses a suite whose server flags set a split before any server starts", async () => {
    let started = 0;
    const ctx = {
      testName: "scale",
      restartTarget: {
        serverFlags: ["-ngl", "99", "-sm", "row"],
        start: async () => {
          started++;
          throw new Error("not reached");
        },
      },
    } as unknown as ScalingContext;
    const err = await runScalingTest(ctx, DEFAULTS, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect(started).toBe(0);
  });
});
