/**
 * The gate through its real paths (issue 12): `run --baseline` against a baseline made by `baseline update` from
 * separate runs, and `tokengate ab`, both with real servers and the tiny synthetic model. The slowdowns are made by
 * configuration and are large (several times the CPU machine's run-to-run noise), so the verdicts below are what the
 * statistics must give; the rates at realistic sizes are measured by docs/runs/*-gate and checked on their files
 * (test/unit/gate-rates.test.ts). No assertion here is about speed.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadBaseline, updateBaseline } from "../../src/analysis/baseline.js";
import { judge } from "../../src/analysis/verdict.js";
import { runAb } from "../../src/arms/ab.js";
import type { Results } from "../../src/measure/results.js";
import { runPipeline } from "../../src/pipeline.js";
import { runTokengate as runCli, STACK_LINE } from "../helpers/cli-run.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-gate-e2e-"));
const quiet = { log: () => {} };

function suite(name: string, yaml: string): string {
  const p = join(dir, `${name}.yml`);
  writeFileSync(p, yaml);
  return p;
}

// Small enough for CI (a few seconds a run), with the 5 trials a comparison needs.
const GATE = (target: string) => `name: gate-e2e
target:
  ${target}
request: { maxTokens: 16 }
trials: 5
# Other test files run beside this one: the busy-machine guard (tested on its own) would turn fails into warns.
policy: { busyMachine: 1 }
tests:
  - kind: latency
    promptTokens: [32]
    repetitions: 3
    warmup: 1
  - kind: throughput
    concurrency: 4
    requests: 8
    warmup: 2
`;

describe("run --baseline on the in-process target", () => {
  let baselines: string;
  let base: Results;
  beforeAll(async () => {
    const file = suite("in-process", GATE("kind: in-process\n  sequences: 4"));
    const runs: string[] = [];
    for (const i of [1, 2, 3]) {
      const out = join(dir, `ip-base-${i}`);
      await runPipeline({ suiteFile: file, modelPath: await tinyModel(), outDir: out, quiet: true }, quiet);
      runs.push(join(out, "results.json"));
    }
    baselines = join(dir, "ip-baselines");
    base = (await updateBaseline({ from: runs, to: join(baselines, "gate-e2e.json") })).baseline.results;
  }, 180_000);

  it("no change: not failed, and What changed says nothing changed", async () => {
    const outcome = await runPipeline(
      {
        suiteFile: join(dir, "in-process.yml"),
        modelPath: await tinyModel(),
        baselinePath: baselines,
        outDir: join(dir, "ip-nochange"),
        quiet: true,
      },
      quiet,
    );
    expect(outcome.results.verdict.overall).not.toBe("fail");
    expect(outcome.results.verdict.changes).toEqual([]);
    expect(outcome.results.verdict.checks.some((c) => c.source === "baseline" && c.comparison)).toBe(true);
    expect(outcome.reportMarkdown).toContain("**What changed:** nothing (same configuration)");
  }, 120_000);

  it("a slower configuration (request batching that holds a lone prompt 60 ms) fails, and What changed names it", async () => {
    // The same suite with the seed's batching on: a configuration change, compared rather than refused.
    const file = suite(
      "in-process-batching",
      // With 4 sequences free, a lone new prompt waits the whole 60 ms for company.
      GATE("kind: in-process\n  sequences: 4\n  batching: { maxBatchSize: 4, maxWaitMs: 60 }"),
    );
    const outcome = await runPipeline(
      {
        suiteFile: file,
        modelPath: await tinyModel(),
        baselinePath: baselines,
        outDir: join(dir, "ip-slow"),
        quiet: true,
      },
      quiet,
    );
    expect(outcome.exitCode).toBe(1);
    expect(outcome.results.verdict.overall).toBe("fail");
    const fail = outcome.results.verdict.checks.find((c) => c.verdict === "fail")!;
    expect(fail.metric).toMatch(/^(ttft_ms|e2e_ms)\./);
    expect(fail.reason).toMatch(/confirmed/);
    const labels = outcome.results.verdict.changes!.map((c) => c.label);
    expect(labels).toContain("target batching");
    expect(labels).toContain("suite file");
    expect(outcome.reportMarkdown).toMatch(/\*\*What changed:\*\* .*target batching/);
  }, 180_000);

  it("another machine is not comparable: said per baseline, with what differs, never judged", async () => {
    const moved = structuredClone(base);
    moved.environment.cpuModel = "Some Other CPU";
    const file = join(dir, "other-machine.json");
    writeFileSync(file, JSON.stringify(moved));
    const outcome = await runPipeline(
      {
        suiteFile: join(dir, "in-process.yml"),
        modelPath: await tinyModel(),
        baselinePath: file,
        outDir: join(dir, "ip-other"),
        quiet: true,
      },
      quiet,
    );
    expect(outcome.results.verdict.overall).toBe("warn");
    const check = outcome.results.verdict.checks.find((c) => c.source === "baseline")!;
    expect(check.reason).toMatch(
      /^not comparable with baseline .*: CPU differs \(baseline Some Other CPU, run .+\); baseline comparison skipped$/,
    );
    expect(outcome.results.verdict.checks.filter((c) => c.source === "baseline" && c.comparison)).toEqual([]);
  }, 120_000);

  it("a baseline written by the current release (committed fixture) still loads and is compared", async () => {
    const fixture = new URL("../fixtures/results/quick.json", import.meta.url).pathname;
    const migrated = join(dir, "release-baseline");
    await updateBaseline({ from: fixture, to: join(migrated, "quick.json") });
    const b = await loadBaseline(join(migrated, "quick.json"));
    const release = JSON.parse(readFileSync(fixture, "utf8")) as Results;
    expect(b.results.tests.map((t) => t.name)).toEqual(release.tests.map((t) => t.name));
    // Compared with itself: every gated metric compared, nothing changed, nothing "not comparable".
    const v = judge({ results: release, baseline: b });
    expect(v.changes).toEqual([]);
    expect(v.checks.filter((c) => c.source === "baseline" && c.comparison).length).toBeGreaterThan(0);
    expect(v.checks.some((c) => /not comparable/.test(c.reason))).toBe(false);
  });
});

describe("tokengate ab on llama-server", () => {
  let serverBin: string;
  let file: string;
  beforeAll(async () => {
    serverBin = await findLlamaServerForTests();
    file = suite("ls", GATE("kind: llama-server"));
  });

  it("an A/A passes or warns, never fails; each check says what it could have caught", async () => {
    const outcome = await runAb(
      {
        base: { suiteFile: file, modelPath: await tinyModel(), serverBin, outDir: join(dir, "ab-aa"), quiet: true },
        a: { label: "base", serverFlags: ["-t", "1"] },
        b: { label: "head", serverFlags: ["-t", "1"] },
        pairs: 2,
        allowIdentical: true,
      },
      quiet,
    );
    expect(outcome.results.verdict.overall).not.toBe("fail");
    expect(outcome.results.verdict.changes).toEqual([]);
    expect(outcome.results.ab).toMatchObject({ pairs: 2, order: ["A", "B", "B", "A"] });
    for (const run of outcome.results.ab!.arms.flatMap((a) => a.runs))
      expect(existsSync(join(outcome.outDir, run))).toBe(true);
    const checks = outcome.results.verdict.checks.filter((c) => c.comparison);
    expect(checks.length).toBeGreaterThan(0);
    for (const c of checks) expect(c.comparison!.pairs).toBe(2);
  }, 240_000);

  it("-t 1 vs -t 2 on 2 cores (the server then fights the client) fails, What changed naming -t", async () => {
    const outcome = await runAb(
      {
        base: { suiteFile: file, modelPath: await tinyModel(), serverBin, outDir: join(dir, "ab-t"), quiet: true },
        a: { label: "base", serverFlags: ["-t", "1"] },
        b: { label: "head", serverFlags: ["-t", "2"] },
        pairs: 3,
      },
      quiet,
    );
    expect(outcome.results.verdict.changes).toEqual([
      { field: "target.serverFlags.-t", label: "-t", baseline: "1", run: "2" },
      { field: "target.details.threads", label: "target threads", baseline: "1", run: "2" },
    ]);
    expect(outcome.results.verdict.overall).toBe("fail");
    expect(outcome.exitCode).toBe(1);
    expect(outcome.reportMarkdown).toMatch(/\*\*What changed:\*\* \\?-t 1 → 2/);
    expect(outcome.reportMarkdown).toContain("Same-runner A/B: 3 pairs, run order A B B A A B");
  }, 300_000);

  it("bad input names the arm: identical arms, a base suite that does not parse (exit 2, nothing started)", async () => {
    const same = await runCli(["ab", "--suite", file, "--target", "llama-server", "--out", join(dir, "ab-same")]);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/arms A \(base\) and B \(head\) are identical/);
    const broken = suite("broken", "name: [unclosed\n");
    const bad = await runCli(["ab", "--suite", file, "--base-suite", broken, "--out", join(dir, "ab-bad")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split("\n")[0]).toMatch(/broken\.yml: arm A \(base\): not valid YAML/);
    expect(`${same.stderr}${bad.stderr}`).not.toMatch(STACK_LINE);
    expect(existsSync(join(dir, "ab-bad", "runs"))).toBe(false);
  }, 60_000);

  it("an arm whose server never starts: exit 3 naming the arm, the other arm's run kept on disk", async () => {
    // Fault injection a real server cannot produce on demand: a "server" that exits at once.
    const dead = join(dir, "fault-injecting-dead-server.sh");
    writeFileSync(dead, "#!/bin/sh\necho 'this server exits at once' >&2\nexit 1\n", { mode: 0o755 });
    const r = await runCli([
      "ab",
      "--suite",
      file,
      "--target",
      "llama-server",
      "--model",
      await tinyModel(),
      "--base-server-bin",
      serverBin,
      "--server-bin",
      dead,
      "--out",
      join(dir, "ab-dead"),
      "--quiet",
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/arm B \(head\) run 1, 2 of 6/);
    expect(r.stderr).not.toMatch(STACK_LINE);
    const kept = JSON.parse(readFileSync(join(dir, "ab-dead", "runs", "A-1", "results.json"), "utf8")) as Results;
    expect(kept.tests[0]!.requests.succeeded).toBeGreaterThan(0);
  }, 120_000);
});
