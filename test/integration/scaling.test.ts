import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamClient } from "../../src/client/stream-client.js";
import { type ScalingTest, scalingTestSchema, suiteSchema } from "../../src/config/suite-schema.js";
import { type CommandText, detectGpuInventory, type GpuInventory } from "../../src/measure/gpu-topology.js";
import type { RequestRecord } from "../../src/measure/record.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import type { Results, TestResult } from "../../src/measure/results.js";
import { renderMarkdown } from "../../src/report/markdown.js";
import { resultsSchema } from "../../src/report/results-schema.js";
import { runTest } from "../../src/suite/index.js";
import {
  llamaServerRestarter,
  type RestartTarget,
  type ScalingContext,
  type ServerVariant,
} from "../../src/suite/scaling.js";
import type { ScalingExtra } from "../../src/suite/scaling-plan.js";
import { createLlamaServerTarget, type LlamaServerTarget } from "../../src/target/llama-server.js";
import type { Endpoint } from "../../src/target/types.js";
import { liveChildCount } from "../../src/util/children.js";
import { BadInputError } from "../../src/util/errors.js";
import { createRng } from "../../src/util/rng.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

/**
 * The scaling experiment on the real llama-server (CPU build) with the tiny model, wired as the pipeline wires it:
 * the run's own server stays up while the experiment starts, measures and stops one server per configuration.
 */
const dir = mkdtempSync(join(tmpdir(), "tokengate-scaling-"));
const FLAGS = ["--parallel", "2", "-c", "1024"];
let serverBin: string;
let model: string;
let main: LlamaServerTarget;
let mainEndpoint: Endpoint;
let sink: RecordSink;
let client: StreamClient;
const suite = suiteSchema.parse({ request: { maxTokens: 8 }, tests: [{ kind: "latency" }] });

beforeAll(async () => {
  serverBin = await findLlamaServerForTests();
  model = await tinyModel();
  main = createLlamaServerTarget({ model, serverBin, threads: 1, serverFlags: FLAGS, outDir: dir });
  mainEndpoint = await main.start();
  client = new StreamClient(mainEndpoint, { stallTimeoutMs: 30_000, requestTimeoutMs: 60_000 });
  sink = new RecordSink(join(dir, "records.ndjson"));
});
afterAll(async () => {
  sink?.close();
  await client?.close();
  await main?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function context(name: string, restart: RestartTarget, inventory?: () => Promise<GpuInventory>): ScalingContext {
  return {
    testName: name,
    endpoint: mainEndpoint,
    client,
    sink,
    request: suite.request,
    rng: createRng(7),
    signal: new AbortController().signal,
    restartTarget: restart,
    ...(inventory ? { gpuInventory: inventory } : {}),
  };
}

/** The real restarter, with the variants it was asked for kept (what reached CUDA_VISIBLE_DEVICES and the flags). */
function recordingRestarter(): { restart: RestartTarget; variants: ServerVariant[] } {
  const real = llamaServerRestarter({ model, serverBin, threads: 1, serverFlags: FLAGS, outDir: dir });
  const variants: ServerVariant[] = [];
  return {
    variants,
    restart: {
      serverFlags: real.serverFlags,
      start: (v, signal) => {
        variants.push(v);
        return real.start(v, signal);
      },
    },
  };
}

function records(test: string): RequestRecord[] {
  return readFileSync(join(dir, "records.ndjson"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as RequestRecord)
    .filter((r) => r.test === test);
}

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "../fixtures/nvidia-smi", name), "utf8");

/** Round-trips a result through results.json's schema, as a report read back from disk would see it. */
function throughResultsFile(test: TestResult): Results {
  const base = JSON.parse(readFileSync(join(import.meta.dirname, "../fixtures/results/quick.json"), "utf8"));
  return resultsSchema.parse(JSON.parse(JSON.stringify({ ...base, tests: [test] }))) as Results;
}

const SMALL: Partial<ScalingTest> = {
  throughput: { concurrency: 2, requests: 4, promptTokens: 32, warmup: 1 },
  latency: { promptTokens: 32, repetitions: 2, warmup: 1 },
};

describe("scaling experiment on a real llama-server (CPU build, tiny model)", () => {
  it("with no GPU (this machine): one cpu point, measured on its own server, which is stopped after", async () => {
    const children = liveChildCount();
    const { restart, variants } = recordingRestarter();
    const test = scalingTestSchema.parse({ kind: "scaling", name: "scale-cpu", ...SMALL });
    // Real detection: nvidia-smi is not installed here, so no GPU is visible.
    const result = await runTest(context("scale-cpu", restart), test, 1);
    const extra = result.extra as unknown as ScalingExtra;

    expect(variants).toEqual([{ label: "scale-cpu-cpu", env: {}, extraFlags: [] }]);
    expect(extra.visibleGpus).toBe(0);
    expect(extra.points).toHaveLength(1);
    const p = extra.points[0]!;
    expect(p).toMatchObject({ id: "cpu", gpus: 0, status: "ok", flags: [] });
    expect(p.serverGpus).toBeUndefined();
    expect(p.speedup).toBeUndefined();
    expect(p.throughput!.requests).toMatchObject({ attempted: 4, succeeded: 4, failed: 0 });
    expect(p.latency!.requests).toMatchObject({ attempted: 2, succeeded: 2, failed: 0 });
    expect(p.throughput!.outputTokensPerS).toBeGreaterThan(0);
    expect(p.latency!.ttftP50Ms).toBeGreaterThan(0);
    expect(p.latency!.e2eP95Ms).toBeGreaterThanOrEqual(p.latency!.ttftP95Ms!);
    expect(p.server?.decodeTokensPerS).toBeGreaterThan(0);
    expect(extra.skipped.map((s) => s.gpus)).toEqual([1, 2, 4, 8]);

    expect(result.requests).toMatchObject({ attempted: 6, succeeded: 6 });
    expect(result.scenarios.map((s) => s.name)).toEqual(["cpu:throughput", "cpu:latency"]);
    expect(result.metrics.output_tokens_per_s!.summary.mean).toBe(p.throughput!.outputTokensPerS);
    expect(result.metrics.ttft_ms!.summary.count).toBe(2);
    expect(result.metrics.error_rate!.summary.mean).toBe(0);
    expect(result.metrics.scaling_efficiency).toBeUndefined();

    // Every request is on disk under the test's name, warm-ups marked, each with the exact output length.
    const recs = records("scale-cpu");
    expect(recs).toHaveLength(1 + 4 + 1 + 2);
    expect(recs.filter((r) => !r.measured)).toHaveLength(2);
    expect(new Set(recs.map((r) => r.scenario))).toEqual(new Set(["cpu:throughput", "cpu:latency"]));
    for (const r of recs) expect(r).toMatchObject({ ok: true, outputTokens: 8 });

    const log = join(dir, "llama-server-scale-cpu-cpu.log");
    expect(readFileSync(log, "utf8")).toMatch(/# tokengate: .*--parallel 2 -c 1024/);
    // The configuration's server is gone; the run's own server is still up.
    expect(liveChildCount()).toBe(children);
    expect(main.alive()).toBe(true);

    const md = renderMarkdown(throughResultsFile(result));
    expect(md).toContain("### scale\\-cpu (scaling)");
    expect(md).toContain("One configuration measured (no GPU)");
    expect(md).toContain("1, 2, 4, 8 GPUs (no GPU visible: measured on the CPU instead)");
    expect(md).toContain("| `cpu` (ref) |");
    expect(md).not.toContain('xychart-beta\n  title "Throughput by configuration');
  });

  it("with a pretend 2-GPU inventory: a server per configuration, a failed one recorded, speedup and efficiency", async () => {
    // nvidia-smi output of a 2-GPU machine (fixtures). The CPU build ignores CUDA_VISIBLE_DEVICES and warns that
    // -sm/-ts have no effect, so every configuration really runs, on the CPU; `-sm tensor` really fails to load
    // ("LLAMA_SPLIT_MODE_TENSOR needs >= 1 devices"): a configuration the build cannot run.
    const smi: CommandText = async (_c, args) => ({
      code: 0,
      text: fixture(args[0] === "-L" ? "list-h200x8.txt" : "topo-hgx-h200x8.txt"),
    });
    const inventory = () => detectGpuInventory({ CUDA_VISIBLE_DEVICES: "0,1" }, smi);
    const inv = await inventory();
    const { restart, variants } = recordingRestarter();
    const test = scalingTestSchema.parse({
      kind: "scaling",
      name: "scale-2",
      gpus: [1, 2, 4],
      splitModes: ["layer", "tensor"],
      tensorSplits: [[3, 1]],
      ...SMALL,
    });
    const children = liveChildCount();
    const result = await runTest(context("scale-2", restart, inventory), test, 1);
    const extra = result.extra as unknown as ScalingExtra;
    const ids = ["gpu1", "gpu2-layer", "gpu2-tensor", "gpu2-layer-ts3-1", "gpu2-tensor-ts3-1"];
    expect(extra.points.map((p) => p.id)).toEqual(ids);
    expect(variants.map((v) => v.label)).toEqual(ids.map((id) => `scale-2-${id}`));
    expect(variants.map((v) => v.env.CUDA_VISIBLE_DEVICES)).toEqual([
      inv.visible[0]!.uuid,
      ...Array(4).fill(`${inv.visible[0]!.uuid},${inv.visible[1]!.uuid}`),
    ]);
    expect(variants[3]!.extraFlags).toEqual(["-sm", "layer", "-ts", "3,1"]);
    expect(readFileSync(join(dir, "llama-server-scale-2-gpu2-layer-ts3-1.log"), "utf8")).toContain("-sm layer -ts 3,1");

    const byId = Object.fromEntries(extra.points.map((p) => [p.id, p]));
    for (const id of ["gpu2-tensor", "gpu2-tensor-ts3-1"]) {
      expect(byId[id]!.status).toBe("failed");
      // The cause from the server's log, not just "exited".
      expect(byId[id]!.error).toBe(
        "llama-server exited with code 1 while starting: llama_prepare_model_devices: LLAMA_SPLIT_MODE_TENSOR needs >= 1 devices",
      );
      expect(byId[id]!.throughput).toBeUndefined();
    }
    for (const id of ["gpu1", "gpu2-layer", "gpu2-layer-ts3-1"]) {
      expect(byId[id]!.status).toBe("ok");
      expect(byId[id]!.throughput!.requests.succeeded).toBe(4);
      expect(byId[id]!.links).toBe(id === "gpu1" ? "" : "NV18");
    }
    expect(extra.reference).toBe("gpu1");
    expect(extra.headline).toBe("gpu2-layer");
    expect(byId.gpu1!.speedup).toBe(1);
    const two = byId["gpu2-layer"]!;
    expect(two.speedup).toBeCloseTo(two.throughput!.outputTokensPerS! / byId.gpu1!.throughput!.outputTokensPerS!, 9);
    expect(two.efficiency).toBeCloseTo(two.speedup! / 2, 9);
    expect(extra.skipped).toEqual([{ gpus: 4, reason: "only 2 GPUs visible" }]);
    expect(result.metrics.scaling_efficiency!.summary.mean).toBeCloseTo(two.efficiency!, 9);
    expect(result.metrics.speedup!.summary.mean).toBeCloseTo(two.speedup!, 9);
    expect(result.requests).toMatchObject({ attempted: 3 * 6, succeeded: 3 * 6 });
    expect(liveChildCount()).toBe(children);

    const md = renderMarkdown(throughResultsFile(result));
    expect(md).toContain(
      "5 configurations (3 measured) on 2x NVIDIA H200; topology: 2 GPUs; GPU pairs: NV18 x1; CUDA_VISIBLE_DEVICES=0,1; speedup and efficiency relative to `gpu1`.",
    );
    expect(md).toMatch(/\| `gpu2\\-tensor` +\|.*❌ llama\\-server exited with code 1 while starting: /);
    // The server's own log shows no CUDA device: the report says the GPUs were not used.
    expect(md).toContain("`gpu2\\-layer`: the server's log names no CUDA device");
    expect(md).toContain("The metrics above are `gpu2\\-layer`'s (the most GPUs)");
    expect(md).toContain('x-axis "GPUs and split" ["1", "2 layer", "2 layer 3:1"]');
    expect(md).toContain('title "Scaling efficiency (speedup / GPUs)"');
  });

  it("reads CUDA_VISIBLE_DEVICES into the server's environment, and never lets env set the key or flags", async () => {
    const target = createLlamaServerTarget({
      model,
      serverBin,
      threads: 1,
      serverFlags: FLAGS,
      outDir: join(dir, "env"),
      apiKey: "scaling-test-key",
      env: { CUDA_VISIBLE_DEVICES: "GPU-test-uuid" },
    });
    try {
      await target.start();
      const environ = `/proc/${target.pid()}/environ`;
      // Linux exposes a process's environment; the server is a real child of this process.
      expect(existsSync(environ)).toBe(true);
      const vars = readFileSync(environ, "latin1").split("\0");
      expect(vars).toContain("CUDA_VISIBLE_DEVICES=GPU-test-uuid");
      expect(vars).toContain("LLAMA_API_KEY=scaling-test-key");
    } finally {
      await target.stop();
    }
    const refused: Array<Record<string, string>> = [{ LLAMA_API_KEY: "x" }, { LLAMA_ARG_N_PARALLEL: "4" }];
    for (const env of refused) {
      const bad = createLlamaServerTarget({ model, serverBin, env, outDir: join(dir, "bad") });
      const err = await bad.start().catch((e: unknown) => e);
      await bad.stop();
      expect(err).toBeInstanceOf(BadInputError);
      expect((err as BadInputError).subject).toBe("server environment");
    }
  });
});
