import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  baselineRuns,
  findBaseline,
  loadBaseline,
  loadResults,
  loadRuns,
  parseBaseline,
  parseResults,
  runHealthProblems,
  updateBaseline,
} from "../../src/analysis/baseline.js";
import {
  configurationChanges,
  describeChanges,
  describeDifferences,
  environmentDifferences,
  normalizeServerFlags,
  setupDifferences,
} from "../../src/analysis/fingerprint.js";
import { runBaselineCommand } from "../../src/cli/handlers.js";
import type { Results } from "../../src/measure/results.js";
import { BadInputError } from "../../src/util/errors.js";
import { environment, syntheticRun } from "./analysis-fixtures.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tokengate-baseline-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function baselineText(mutate: (b: Record<string, unknown>) => void = () => {}): string {
  const b: Record<string, unknown> = {
    baselineVersion: 1,
    name: "h200",
    createdAt: "2026-11-29T00:00:00.000Z",
    source: { commit: "abc123" },
    results: syntheticRun({ seed: 1, trials: 3, noise: 0.02 }),
  };
  mutate(b);
  return JSON.stringify(b, null, 2);
}

function errorOf(f: () => unknown): BadInputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BadInputError);
    return e as BadInputError;
  }
  throw new Error("expected a BadInputError");
}

describe("parseBaseline: errors name the file and the field", () => {
  it("reads a good baseline, turning JSON nulls back into NaN", () => {
    const text = baselineText((b) => {
      const r = b.results as ReturnType<typeof syntheticRun>;
      (r.tests[0]!.metrics.ttft_ms!.trials[0] as unknown as Record<string, unknown>).p99 = null;
    });
    const b = parseBaseline(text, "baselines/h200.json");
    expect(b.name).toBe("h200");
    expect(b.file).toBe("baselines/h200.json");
    expect(Number.isNaN(b.results.tests[0]!.metrics.ttft_ms!.trials[0]!.p99)).toBe(true);
  });

  it("truncated JSON", () => {
    const text = baselineText();
    const e = errorOf(() => parseBaseline(text.slice(0, text.length / 2), "baselines/h200.json"));
    expect(e.subject).toBe("baselines/h200.json");
    expect(e.message).toMatch(/not valid JSON .*truncated or hand-edited/);
    expect(e.hint).toContain("tokengate baseline update");
  });

  it("an empty file", () => {
    expect(errorOf(() => parseBaseline("  \n", "b.json")).message).toBe("is empty");
  });

  it("a hand-edited wrong type, with the path and the value found", () => {
    const text = baselineText((b) => {
      const r = b.results as ReturnType<typeof syntheticRun>;
      (r.tests[0]!.metrics.ttft_ms!.summary as unknown as Record<string, unknown>).p95 = "fast";
    });
    const e = errorOf(() => parseBaseline(text, "baselines/h200.json"));
    expect(e.subject).toBe("baselines/h200.json");
    expect(e.message).toContain("results.tests[0].metrics.ttft_ms.summary.p95");
    expect(e.message).toContain('(found "fast")');
  });

  it("a missing field", () => {
    const text = baselineText((b) => {
      delete (
        (b.results as ReturnType<typeof syntheticRun>).tests[0]!.metrics.e2e_ms as unknown as Record<string, unknown>
      ).better;
    });
    const e = errorOf(() => parseBaseline(text, "x.json"));
    expect(e.message).toMatch(/results\.tests\[0\]\.metrics\.e2e_ms\.better: /);
  });

  it("a wrong baseline version, and a newer results version", () => {
    const e = errorOf(() =>
      parseBaseline(
        baselineText((b) => (b.baselineVersion = 7)),
        "x.json",
      ),
    );
    expect(e.message).toBe("baselineVersion: 7 is not supported (this tokengate reads version 1)");
    expect(e.hint).toContain("newer tokengate");
    const r = errorOf(() =>
      parseBaseline(
        baselineText((b) => ((b.results as Record<string, unknown>).schemaVersion = 2)),
        "x.json",
      ),
    );
    expect(r.message).toContain("results.schemaVersion: 2 is not supported");
  });

  it("a results file given as a baseline says how to promote it", () => {
    const e = errorOf(() =>
      parseBaseline(JSON.stringify(syntheticRun({ seed: 1, trials: 1, noise: 0 })), "results.json"),
    );
    expect(e.message).toContain("this is a results file, not a baseline");
    expect(e.hint).toContain("tokengate baseline update --from results.json");
  });

  it("parseResults accepts a baseline (compare takes either) and names fields of plain results", () => {
    expect(parseResults(baselineText(), "b.json").suite.name).toBe("smoke");
    const run = syntheticRun({ seed: 1, trials: 1, noise: 0 }) as unknown as Record<string, unknown>;
    (run.environment as Record<string, unknown>).gpus = "H200";
    const e = errorOf(() => parseResults(JSON.stringify(run), "results.json"));
    expect(e.subject).toBe("results.json");
    expect(e.message).toContain("environment.gpus");
  });
});

describe("environment fingerprints", () => {
  it("says plainly what differs in the machine", () => {
    const a = environment();
    const b = environment({ gpus: [{ name: "NVIDIA A100-SXM4-80GB", driver: "580.65" }], cuda: "12.8" });
    const diffs = environmentDifferences(a, b);
    expect(describeDifferences(diffs)).toBe(
      "GPU differs (baseline NVIDIA H200, run NVIDIA A100-SXM4-80GB); CUDA differs (baseline 13.0, run 12.8)",
    );
  });

  it("the kernel release, server build, flags and model are configuration, not environment", () => {
    const a = environment();
    const b = environment({
      os: "linux 6.9.0-other",
      target: {
        ...a.target,
        build: "b2-deadbee",
        serverFlags: ["--threads", "4", "--parallel", "4", "--flash-attn", "on"],
        model: { sha256: "b".repeat(64), quantization: "q8_0" },
      },
    });
    expect(environmentDifferences(a, b)).toEqual([]);
    expect(setupDifferences(a, b).map((d) => d.label)).toEqual([
      "llama.cpp build",
      "model",
      "quantization",
      "--flash-attn",
      "--threads",
    ]);
  });

  it("ignores the port, host, log file and model path, but not threads", () => {
    const a = environment();
    const moved = environment({
      target: {
        ...a.target,
        serverFlags: [
          "--port=5555",
          "--host",
          "127.0.0.1",
          "--threads",
          "8",
          "--parallel",
          "4",
          "-m",
          "/other/model.gguf",
        ],
      },
    });
    expect(setupDifferences(a, moved)).toEqual([]);
    const fewer = environment({
      target: { ...a.target, serverFlags: ["--threads", "4", "--parallel", "4", "--flash-attn", "on"] },
    });
    expect(describeChanges(setupDifferences(a, fewer))).toBe("--flash-attn not set -> on; --threads 8 -> 4");
  });

  it("compares model identity, shape, quantization, build and target details", () => {
    const a = environment();
    const b = environment({
      target: {
        ...a.target,
        build: "b2-deadbee",
        model: { sha256: "b".repeat(64), quantization: "q8_0", shape: { layers: 36 } },
        details: { threads: 8, slots: 8, pid: 1234 },
      },
    });
    const labels = setupDifferences(a, b).map((d) => d.label);
    expect(labels).toEqual(["llama.cpp build", "model", "quantization", "model layers", "target slots"]);
  });

  it("What changed: the run's configuration against the baseline's, tokengate and the suite file included", () => {
    const a = syntheticRun({ seed: 1, trials: 1, noise: 0 });
    const b = syntheticRun({
      seed: 1,
      trials: 1,
      noise: 0,
      env: { target: { ...a.environment.target, build: "b6100", serverFlags: ["--threads", "8", "--parallel", "16"] } },
      suite: { name: a.suite.name, sha256: "c".repeat(64) },
    });
    b.tool = { name: "tokengate", version: "0.2.0" };
    a.environment.target.build = "b6000";
    const changes = configurationChanges(a, b);
    expect(describeChanges(changes)).toBe(
      `llama.cpp build b6000 -> b6100; --parallel 4 -> 16; tokengate ${a.tool.version} -> 0.2.0; suite file sha256 ${a.suite.sha256.slice(0, 12)} -> sha256 cccccccccccc`,
    );
    expect(configurationChanges(a, a)).toEqual([]);
    expect(describeChanges([])).toBe("nothing (same configuration)");
  });

  it("normalizes flags with values, switches and = forms", () => {
    expect([...normalizeServerFlags(["--threads", "8", "--metrics", "--ctx-size=4096", "--port", "1"])]).toEqual([
      ["--threads", "8"],
      ["--metrics", ""],
      ["--ctx-size", "4096"],
    ]);
  });
});

describe("files: update, load, find", () => {
  it("updateBaseline writes a proposal that loads back, and reports what a reviewer should know", async () => {
    const from = join(dir, "results.json");
    const run = syntheticRun({ seed: 2, trials: 1, noise: 0.02 });
    run.tests[0]!.aborted = "server died";
    run.tests[0]!.machine = {
      cpus: 2,
      wallS: 10,
      ownShare: 0.3,
      otherShare: 0.6,
      stealShare: 0,
      otherShareMax: 0.7,
      loadavg1: [3, 3],
    };
    await writeFile(from, JSON.stringify(run));
    const to = join(dir, "proposals", "cpu-smoke.json");
    const out = await updateBaseline({
      from,
      to,
      source: { commit: "abc", run: "42" },
      now: new Date("2026-11-30T12:00:00Z"),
      // The aborted test would be refused without it ("unhealthy runs" below).
      allowPartial: true,
    });
    expect(out.replaced).toBe(false);
    expect(out.warnings.join("\n")).toMatch(/aborted \(server died\)/);
    expect(out.warnings.join("\n")).toMatch(/ran 1 trial\(s\), fewer than the 5 a comparison needs/);
    expect(out.warnings).toContain(
      "test latency ran while other work used 60% of the machine's 2 CPUs: the baseline is slower than the machine; rerun it on a quiet runner",
    );
    const back = await loadBaseline(to);
    expect(back.name).toBe("cpu-smoke");
    expect(back.createdAt).toBe("2026-11-30T12:00:00.000Z");
    expect(back.source).toEqual({ resultsFile: "results.json", commit: "abc", run: "42" });
    expect(back.results.tests[0]!.metrics.ttft_ms!.trials).toHaveLength(1);
    expect((await readFile(to, "utf8")).endsWith("}\n")).toBe(true);
    expect((await updateBaseline({ from, to, allowPartial: true })).replaced).toBe(true);
  });

  it("loadResults names a missing file", async () => {
    const e = await loadResults(join(dir, "nope.json")).catch((x: unknown) => x as BadInputError);
    expect(e).toBeInstanceOf(BadInputError);
    expect((e as BadInputError).message).toBe("results file not found");
  });

  it("findBaseline picks the matching environment, else names the closest and its differences", async () => {
    const bdir = join(dir, "baselines");
    const h200 = join(bdir, "h200.json");
    const a100 = join(bdir, "a100.json");
    await updateBaseline({ from: await writeRun("h200-run.json", {}), to: h200 });
    await updateBaseline({
      from: await writeRun("a100-run.json", { gpus: [{ name: "NVIDIA A100", driver: "580.65" }] }),
      to: a100,
    });
    const onH200 = await findBaseline(bdir, syntheticRun({ seed: 9, trials: 1, noise: 0 }));
    expect(onH200.match?.file).toBe(h200);
    expect(onH200.searched).toEqual([a100, h200]);
    const onL4 = await findBaseline(
      bdir,
      syntheticRun({ seed: 9, trials: 1, noise: 0, env: { gpus: [{ name: "NVIDIA L4", driver: "580.65" }] } }),
    );
    expect(onL4.match).toBeUndefined();
    expect(describeDifferences(onL4.closest!.differences)).toMatch(
      /^GPU differs \(baseline NVIDIA (A100|H200), run NVIDIA L4\)$/,
    );
    expect(await findBaseline(join(dir, "no-such-dir"), syntheticRun({ seed: 1, trials: 1, noise: 0 }))).toEqual({
      searched: [],
    });
  });

  it("findBaseline refuses two baselines for one environment, and a broken one", async () => {
    const bdir = join(dir, "dupes");
    const from = await writeRun("dupe-run.json", {});
    await updateBaseline({ from, to: join(bdir, "one.json") });
    await updateBaseline({ from, to: join(bdir, "two.json") });
    await expect(findBaseline(bdir, syntheticRun({ seed: 1, trials: 1, noise: 0 }))).rejects.toThrow(
      /2 baselines match/,
    );
    const broken = join(dir, "broken");
    await updateBaseline({ from, to: join(broken, "ok.json") });
    await writeFile(join(broken, "bad.json"), '{"baselineVersion": 1, "name": "x", ');
    await expect(findBaseline(broken, syntheticRun({ seed: 1, trials: 1, noise: 0 }))).rejects.toMatchObject({
      subject: join(broken, "bad.json"),
    });
  });
});

describe("multi-run baselines", () => {
  it("update --from a --from b --from c keeps the runs apart, and they load back as runs", async () => {
    const files = await Promise.all(
      [1, 2, 3].map(async (seed) => {
        const f = join(dir, `run-${seed}.json`);
        await writeFile(f, JSON.stringify(syntheticRun({ seed, trials: 5, noise: 0.02 })));
        return f;
      }),
    );
    const to = join(dir, "multi", "ci.json");
    const out = await updateBaseline({ from: files, to });
    expect(out.warnings).toEqual([]);
    const back = await loadBaseline(to);
    expect(back.moreRuns).toHaveLength(2);
    expect(back.source.resultsFiles).toEqual(["run-1.json", "run-2.json", "run-3.json"]);
    expect(back.source.resultsFile).toBe("run-1.json");
    const runs = await loadRuns(to);
    expect(runs).toHaveLength(3);
    expect(runs.map((r) => r.tests[0]!.metrics.ttft_ms!.trials[0]!.p50)).toEqual(
      [1, 2, 3].map((seed) => syntheticRun({ seed, trials: 5, noise: 0.02 }).tests[0]!.metrics.ttft_ms!.trials[0]!.p50),
    );
    expect(baselineRuns(back)).toHaveLength(3);
    // A baseline given as --from adds all its runs.
    const again = await updateBaseline({ from: [to, files[0]!], to: join(dir, "multi", "ci4.json") });
    expect(baselineRuns(again.baseline)).toHaveLength(4);
  });

  it("a single run warns that run-to-run noise will be assumed", async () => {
    const f = join(dir, "one-run.json");
    await writeFile(f, JSON.stringify(syntheticRun({ seed: 1, trials: 5, noise: 0.02 })));
    const out = await updateBaseline({ from: f, to: join(dir, "multi", "one.json") });
    expect(out.warnings).toEqual([
      "one run: comparisons will assume the run-to-run noise (policy runNoise); add runs of separate processes with --from a.json --from b.json --from c.json to measure it",
    ]);
  });

  it("refuses runs of different setups, saying plainly what differs", async () => {
    const a = join(dir, "setup-a.json");
    const b = join(dir, "setup-b.json");
    const c = join(dir, "setup-c.json");
    await writeFile(a, JSON.stringify(syntheticRun({ seed: 1, trials: 5, noise: 0.02 })));
    const other = environment().target;
    await writeFile(
      b,
      JSON.stringify(
        syntheticRun({
          seed: 2,
          trials: 5,
          noise: 0.02,
          env: { target: { ...other, model: { ...other.model!, sha256: "b".repeat(64) } } },
        }),
      ),
    );
    await writeFile(
      c,
      JSON.stringify(
        syntheticRun({ seed: 3, trials: 5, noise: 0.02, suite: { name: "smoke", sha256: "t".repeat(64) } }),
      ),
    );
    const to = join(dir, "multi", "mixed.json");
    const refused = (from: string[]) =>
      updateBaseline({ from, to }).then(
        () => {
          throw new Error("expected a BadInputError");
        },
        (x: unknown) => x as BadInputError,
      );
    const e = await refused([a, b]);
    expect(e).toBeInstanceOf(BadInputError);
    expect(e.subject).toBe(b);
    expect(e.message).toBe(
      "runs of one baseline must be of the same suite and setup: model differs (first run model.gguf (sha256 aaaaaaaaaaaa), this run model.gguf (sha256 bbbbbbbbbbbb))",
    );
    const s = await refused([a, c]);
    expect(s.message).toContain("suite file differs (first run sha256 ssssssssssss, this run tttttttttttt)");
    const d = join(dir, "setup-d.json");
    const run = syntheticRun({ seed: 4, trials: 5, noise: 0.02 });
    run.tests[0]!.params = { ...run.tests[0]!.params, concurrency: 8 };
    await writeFile(d, JSON.stringify(run));
    const p = await refused([a, d]);
    expect(p.message).toContain("test latency: params differ (concurrency first run 1, this run 8)");
  });

  it("an old single-run baseline file (no moreRuns) still loads, as one run", async () => {
    // The shape every baseline had before runs were kept apart, written out literally.
    const old = join(dir, "old.json");
    await writeFile(old, baselineText());
    const b = await loadBaseline(old);
    expect(b.moreRuns).toBeUndefined();
    expect(baselineRuns(b)).toHaveLength(1);
    expect(await loadRuns(old)).toHaveLength(1);
    // A plain results file is one run too.
    const plain = join(dir, "plain.json");
    await writeFile(plain, JSON.stringify(syntheticRun({ seed: 1, trials: 3, noise: 0.02 })));
    expect(await loadRuns(plain)).toHaveLength(1);
  });

  it("a broken extra run names its field", () => {
    const text = baselineText((b) => {
      const extra = syntheticRun({ seed: 2, trials: 3, noise: 0.02 });
      (extra.tests[0]!.metrics.ttft_ms!.summary as unknown as Record<string, unknown>).p95 = "fast";
      b.moreRuns = [extra];
    });
    const e = errorOf(() => parseBaseline(text, "baselines/h200.json"));
    expect(e.message).toContain("moreRuns[0].tests[0].metrics.ttft_ms.summary.p95");
    const newer = baselineText((b) => {
      b.moreRuns = [{ ...syntheticRun({ seed: 2, trials: 3, noise: 0.02 }), schemaVersion: 9 }];
    });
    expect(errorOf(() => parseBaseline(newer, "b.json")).message).toMatch(
      /^moreRuns\[0\]\.schemaVersion: 9 is not supported/,
    );
  });
});

describe("unhealthy runs never become baselines", () => {
  const healthy = () => syntheticRun({ seed: 5, trials: 5, noise: 0.02 });
  const save = async (name: string, run: Results) => {
    const f = join(dir, name);
    await writeFile(f, JSON.stringify(run));
    return f;
  };
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error("expected a BadInputError");
      },
      (x: unknown) => {
        expect(x).toBeInstanceOf(BadInputError);
        return x as BadInputError;
      },
    );

  it("an interrupted run is refused with exit 2, naming the file, why and the flag; --allow-partial promotes it", async () => {
    const run = healthy();
    run.status = "interrupted";
    run.statusReason = "SIGTERM";
    const from = await save("interrupted.json", run);
    const to = join(dir, "health", "interrupted.json");
    const e = await refusal(updateBaseline({ from, to }));
    expect(e.exitCode).toBe(2);
    expect(e.subject).toBe(from);
    expect(e.message).toBe("refusing to make a baseline of an unhealthy run: the run was interrupted (SIGTERM)");
    expect(e.hint).toContain("--allow-partial");
    await expect(readFile(to)).rejects.toMatchObject({ code: "ENOENT" });
    const out = await updateBaseline({ from, to, allowPartial: true });
    expect(out.warnings).toContain("the run was interrupted (SIGTERM): promoted with --allow-partial");
    expect((await loadBaseline(to)).results.status).toBe("interrupted");
  });

  it("an aborted run, and a complete run with an aborted test, are refused", async () => {
    const aborted = healthy();
    aborted.status = "aborted";
    const a = await refusal(
      updateBaseline({ from: await save("aborted.json", aborted), to: join(dir, "h", "a.json") }),
    );
    expect(a.message).toBe("refusing to make a baseline of an unhealthy run: the run was aborted");
    const test = healthy();
    test.tests[0]!.aborted = "llama-server exited with code 139";
    const t = await refusal(
      updateBaseline({ from: await save("test-aborted.json", test), to: join(dir, "h", "t.json") }),
    );
    expect(t.message).toBe(
      "refusing to make a baseline of an unhealthy run: test latency was aborted (llama-server exited with code 139)",
    );
  });

  it("a run whose verdict failed on errors is refused; a run that failed on speed is not (an accepted regression)", async () => {
    const errors = healthy();
    errors.verdict = {
      overall: "fail",
      reason: "fail: latency: error rate 0.05",
      checks: [
        {
          test: "latency",
          metric: "error_rate",
          source: "run",
          verdict: "fail",
          value: 0.05,
          reference: 0.01,
          reason: "error rate 0.05 (5 of 100 requests failed): at or above fail 1%",
        },
      ],
    };
    const e = await refusal(updateBaseline({ from: await save("errors.json", errors), to: join(dir, "h", "e.json") }));
    expect(e.message).toBe(
      "refusing to make a baseline of an unhealthy run: test latency failed on errors (error rate 0.05 (5 of 100 requests failed): at or above fail 1%)",
    );
    // The suite's own error_rate target counts too.
    const target = healthy();
    target.verdict = {
      overall: "fail",
      reason: "fail",
      checks: [
        { test: "latency", metric: "error_rate", source: "target", verdict: "fail", reason: "error_rate 5% > 1%" },
      ],
    };
    expect(runHealthProblems(target)).toEqual(["test latency failed on errors (error_rate 5% > 1%)"]);
    const slow = healthy();
    slow.verdict = {
      overall: "fail",
      reason: "fail: latency: ttft p95 +20%",
      checks: [
        { test: "latency", metric: "ttft_ms.p95", source: "baseline", verdict: "fail", reason: "ttft p95 +20%" },
      ],
    };
    expect(runHealthProblems(slow)).toEqual([]);
    await expect(
      updateBaseline({ from: await save("slow.json", slow), to: join(dir, "h", "s.json") }),
    ).resolves.toMatchObject({
      replaced: false,
    });
    // A warn on errors is not a fail.
    const warned = healthy();
    warned.verdict = {
      overall: "warn",
      reason: "warn",
      checks: [{ test: "latency", metric: "error_rate", source: "run", verdict: "warn", reason: "error rate 0.002" }],
    };
    expect(runHealthProblems(warned)).toEqual([]);
  });

  it("older results without a status are complete; a status of complete is healthy", () => {
    const old = healthy();
    expect(old.status).toBeUndefined();
    expect(runHealthProblems(old)).toEqual([]);
    expect(runHealthProblems({ ...old, status: "complete" })).toEqual([]);
  });

  it("of several runs, the message names which run of which file", async () => {
    const good = await save("multi-good.json", healthy());
    const bad = healthy();
    bad.status = "interrupted";
    bad.statusReason = "the parent process is gone";
    const badFile = await save("multi-bad.json", bad);
    const e = await refusal(updateBaseline({ from: [good, badFile], to: join(dir, "h", "m.json") }));
    expect(e.subject).toBe(badFile);
    expect(e.message).toBe(
      `refusing to make a baseline of an unhealthy run: run 2 (${badFile}): the run was interrupted (the parent process is gone)`,
    );
  });

  it("tokengate baseline update: refused without --allow-partial (a BadInputError: exit 2), written with it", async () => {
    const run = healthy();
    run.status = "aborted";
    run.statusReason = "llama-server could not be restarted";
    const from = await save("cli-aborted.json", run);
    const to = join(dir, "h", "cli.json");
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      const e = await refusal(runBaselineCommand(["--from", from, "--to", to]));
      expect(e.exitCode).toBe(2);
      expect(e.message).toContain("the run was aborted (llama-server could not be restarted)");
      expect(await runBaselineCommand(["--from", from, "--to", to, "--allow-partial"])).toBe(0);
      expect(stderr.mock.calls.map((c) => String(c[0]))).toContain(
        "warning: the run was aborted (llama-server could not be restarted): promoted with --allow-partial\n",
      );
      expect((await loadBaseline(to)).results.status).toBe("aborted");
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
  });
});

async function writeRun(name: string, env: Parameters<typeof environment>[0]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(syntheticRun({ seed: 3, trials: 2, noise: 0.02, env })));
  return file;
}
