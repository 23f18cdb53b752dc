import { describe, expect, it } from "vitest";
import type { RequestCounts, TestResult } from "../../src/measure/results.js";
import { isScalingKind, renderScalingSection } from "../../src/report/scaling-report.js";
import { serverGpusFromLog, startFailure } from "../../src/suite/scaling.js";
import { type ScalingExtra, type ScalingPoint, scalingFigures } from "../../src/suite/scaling-plan.js";
import { CouldNotRunError } from "../../src/util/errors.js";

const counts = (ok: number, all = ok): RequestCounts => ({
  attempted: all,
  succeeded: ok,
  failed: all - ok,
  errors: all > ok ? { http: all - ok } : {},
  shortfalls: 0,
});

function point(id: string, gpus: number, tput: number | undefined, more: Partial<ScalingPoint> = {}): ScalingPoint {
  const mode = id.split("-")[1] as ScalingPoint["splitMode"];
  return {
    id,
    label: id,
    gpus,
    devices: Array.from({ length: gpus }, (_, i) => i),
    flags: [],
    links: gpus > 1 ? "NV18" : "",
    ...(gpus > 1 ? { splitMode: mode } : {}),
    status: tput === undefined ? "failed" : "ok",
    ...(tput === undefined
      ? { error: "llama-server exited with code 1 while starting: out of memory" }
      : {
          loadS: 2.5,
          serverGpus: gpus,
          throughput: { requests: counts(32), outputTokensPerS: tput, requestsPerS: tput / 128, ttftP95Ms: 90 },
          latency: { requests: counts(5), ttftP50Ms: 20, ttftP95Ms: 25, e2eP50Ms: 400, e2eP95Ms: 420 },
        }),
    ...more,
  };
}

function resultOf(points: ScalingPoint[], extra: Partial<ScalingExtra> = {}): TestResult {
  const figured = scalingFigures(points);
  const e: ScalingExtra = {
    points: figured.points,
    ...(figured.reference ? { reference: figured.reference } : {}),
    headline: points[points.length - 1]!.id,
    visibleGpus: 8,
    gpuNames: "8x NVIDIA H200",
    topology: "8 GPUs; GPU pairs: NV18 x28; 2 NUMA nodes",
    skipped: [],
    notes: [],
    ...extra,
  };
  return {
    name: "scaling",
    kind: "scaling",
    params: { throughput: { concurrency: 16 } },
    metrics: {},
    scenarios: [],
    requests: counts(0),
    windowS: 1,
    trials: 1,
    extra: e as unknown as Record<string, unknown>,
  };
}

describe("scaling report section", () => {
  it("is only for the scaling kind", () => {
    expect(isScalingKind("scaling")).toBe(true);
    expect(renderScalingSection({ ...resultOf([point("gpu1", 1, 100)]), kind: "throughput" })).toEqual([]);
  });

  it("an 8-GPU run: a row per configuration, speedup and efficiency, charts against linear scaling", () => {
    const md = renderScalingSection(
      resultOf(
        [
          point("gpu1", 1, 300),
          point("gpu2-layer", 2, 540),
          point("gpu2-row", 2, 420),
          point("gpu4-layer", 4, 960),
          point("gpu4-row", 4, undefined),
          point("gpu8-layer", 8, 1500),
        ],
        { skipped: [], headline: "gpu8-layer" },
      ),
    ).join("\n");
    expect(md).toContain("6 configurations (5 measured) on 8x NVIDIA H200; topology: 8 GPUs; GPU pairs: NV18 x28");
    expect(md).toContain("relative to `gpu1`");
    expect(md).toMatch(/\| `gpu1` \(ref\) +\| +1 \| +0 \| +\| +\| +2\.5 \| +300 \|.*\| +1x \| +100% \|/);
    expect(md).toMatch(/\| `gpu2\\-layer` +\| +2 \| +0,1 \| NV18 +\| layer +\|.*\| +540 \|.*\| +1\.8x \| +90% \|/);
    expect(md).toMatch(
      /\| `gpu8\\-layer` +\|.*\| +1500 \|.*\| +5x \| +62\.5% \| +20 \/ 25 \| +400 \/ 420 \| +90 \| +37\/37 \|/,
    );
    expect(md).toMatch(/\| `gpu4\\-row` +\|.*❌ llama\\-server exited with code 1 while starting: out of memory \|/);
    expect(md).toContain('x-axis "GPUs and split" ["1", "2 layer", "2 row", "4 layer", "8 layer"]');
    expect(md).toContain("  bar [300, 540, 420, 960, 1500]");
    expect(md).toContain("  line [300, 600, 600, 1200, 2400]");
    expect(md).toContain("Bars: output tokens/s at concurrency 16; line: linear scaling from `gpu1`");
    expect(md).toContain("  bar [100, 90, 70, 80, 62.5]");
    expect(md).toContain('y-axis "efficiency (%)" 0 --> 100');
    expect(md).not.toContain("⚠️");
  });

  it("one point: says so, no chart", () => {
    const md = renderScalingSection(
      resultOf([point("gpu1", 1, 300)], {
        visibleGpus: 1,
        gpuNames: "1x NVIDIA H200",
        skipped: [
          { gpus: 2, reason: "only 1 GPU visible" },
          { gpus: 4, reason: "only 1 GPU visible" },
        ],
      }),
    ).join("\n");
    expect(md).toContain("One configuration measured (1x NVIDIA H200");
    expect(md).toContain("Not measured: 2, 4 GPUs (only 1 GPU visible).");
    expect(md).not.toContain("```mermaid");
  });

  it("warns when the server saw other devices than planned (a CPU build, a CUDA_VISIBLE_DEVICES mix-up)", () => {
    const { serverGpus: _s, ...noCuda } = point("gpu2-layer", 2, 500);
    const md = renderScalingSection(
      resultOf([point("gpu1", 1, 300), noCuda, point("gpu4-layer", 4, 900, { serverGpus: 8 })]),
    ).join("\n");
    expect(md).toContain("`gpu2\\-layer`: the server's log names no CUDA device, so GPU use is not confirmed");
    expect(md).toContain("`gpu4\\-layer`: the server found 8 CUDA devices, 4 were planned.");
  });

  it("treats results read back from a file as untrusted: text escaped, chart labels rebuilt from numbers", () => {
    const evil = point("gpu2-layer", 2, 500, {
      id: "x`|<img src=x onerror=alert(1)>",
      splitMode: '"] \n%%{init}%%' as never,
      tensorSplitName: "<script>",
      links: "| NV18 | @team",
    });
    const md = renderScalingSection(
      resultOf([point("gpu1", 1, 300), { ...evil, status: "failed", error: "<b>boom</b>\n## heading" }], {
        notes: ["[click](https://evil.example) #123"],
      }),
    ).join("\n");
    expect(md).not.toContain("<img");
    expect(md).not.toContain("<script>");
    expect(md).not.toContain("<b>");
    expect(md).not.toContain("\n## heading");
    expect(md).not.toContain("](https://");
    expect(md).not.toContain("%%{init}");
    // The failed point is still charted (it has throughput figures), labelled from its GPU count only.
    expect(md).toContain('x-axis "GPUs and split" ["1", "2"]');
  });
});

describe("what the runner reads from llama-server", () => {
  it("the CUDA device count from the start log", () => {
    const log =
      "ggml_cuda_init: GGML_CUDA_FORCE_MMQ:    no\nggml_cuda_init: found 2 CUDA devices (Total VRAM: 287542 MiB):\n  Device 0: NVIDIA H200, compute capability 9.0";
    expect(serverGpusFromLog(log)).toBe(2);
    expect(serverGpusFromLog("ggml_cuda_init: found 1 CUDA devices:\n")).toBe(1);
    expect(serverGpusFromLog("build: 1 (80fb11a) with cc for x86_64\nsystem_info: n_threads = 2")).toBeUndefined();
  });

  it("why a server did not start: the error without the log path, and the log's first error line", () => {
    const err = new CouldNotRunError(
      "llama-server exited with code 1 while starting; last lines of /tmp/x/llama-server-s-gpu2-tensor.log:\n" +
        "  | 0.00.030.955 W common_fit_params: failed to fit params to free device memory: not implemented, abort\n" +
        "  | 0.00.103.419 E llama_prepare_model_devices: LLAMA_SPLIT_MODE_TENSOR needs >= 1 devices\n" +
        "  | 0.00.109.436 E srv  llama_server: exiting due to model loading error",
    );
    expect(startFailure(err)).toBe(
      "llama-server exited with code 1 while starting: llama_prepare_model_devices: LLAMA_SPLIT_MODE_TENSOR needs >= 1 devices",
    );
    const oom = new CouldNotRunError(
      "llama-server was killed by SIGKILL while starting; last lines of /tmp/l.log:\n  | load_tensors: loading model\n  | ggml_backend_cuda_buffer_type_alloc_buffer: allocating 80000 MiB on device 0: cudaMalloc failed: out of memory",
    );
    expect(startFailure(oom)).toBe(
      "llama-server was killed by SIGKILL while starting: ggml_backend_cuda_buffer_type_alloc_buffer: allocating 80000 MiB on device 0: cudaMalloc failed: out of memory",
    );
    expect(startFailure(new Error("could not start llama-server: ENOENT"))).toBe(
      "could not start llama-server: ENOENT",
    );
  });
});

describe("GPU use read from the server log", () => {
  it("counts ggml_cuda_init's device line, else the loader's 'using device CUDAn' lines", async () => {
    const { serverGpusFromLog } = await import("../../src/suite/scaling.js");
    expect(serverGpusFromLog("ggml_cuda_init: found 2 CUDA devices (Total VRAM: 286000 MiB):")).toBe(2);
    expect(
      serverGpusFromLog(
        "llama_model_load_from_file_impl: using device CUDA0 (NVIDIA H200) (0000:00:05.0) - 142000 MiB free\nusing device CUDA1 (NVIDIA H200)",
      ),
    ).toBe(2);
    expect(serverGpusFromLog("load_tensors: CPU model buffer size = 8.00 MiB")).toBeUndefined();
  });
});
