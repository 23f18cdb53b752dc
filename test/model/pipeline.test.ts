import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RequestRecord } from "../../src/measure/record.js";
import { runPipeline } from "../../src/pipeline.js";
import type { LlamaServerTarget } from "../../src/target/llama-server.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-pipeline-"));

function suite(name: string, yaml: string): string {
  const p = join(dir, `${name}.yml`);
  writeFileSync(p, yaml);
  return p;
}

function records(outDir: string): RequestRecord[] {
  return readFileSync(join(outDir, "records.ndjson"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as RequestRecord);
}

const SMALL = `name: pipeline-test
trials: 1
request: { maxTokens: 16 }
tests:
  - kind: latency
    promptTokens: [16, 64]
    repetitions: 3
    warmup: 1
  - kind: throughput
    concurrency: 3
    requests: 6
    warmup: 2
targets:
  - error_rate < 0.01
`;

describe.each([
  ["llama-server", "completion"],
  ["llama-server", "openai-chat"],
  ["in-process", "openai-chat"],
  ["in-process", "openai-completions"],
] as const)("pipeline on the real %s target, %s API, tiny model", (target, api) => {
  it("measures exactly the requested output tokens, with TTFT consistent with the server's timings", async () => {
    const out = join(dir, `${target}-${api}`);
    const outcome = await runPipeline(
      {
        suiteFile: suite(`${target}-${api}`, SMALL.replace("maxTokens: 16 }", `maxTokens: 16, api: ${api} }`)),
        target,
        modelPath: await tinyModel(),
        ...(target === "llama-server" ? { serverBin: await findLlamaServerForTests() } : {}),
        outDir: out,
        quiet: true,
      },
      { log: () => {} },
    );
    expect(outcome.exitCode).toBe(0);
    const [latency, throughput] = outcome.results.tests;
    expect(latency!.requests).toMatchObject({ attempted: 6, succeeded: 6, failed: 0, shortfalls: 0 });
    expect(throughput!.requests).toMatchObject({ attempted: 6, succeeded: 6, failed: 0, shortfalls: 0 });
    expect(latency!.scenarios.map((s) => s.name)).toEqual(["prompt_16", "prompt_64"]);
    const recs = records(out);
    // warm-up requests are on disk too, marked as not measured
    expect(recs).toHaveLength(6 + 2 + 6 + 2);
    expect(recs.filter((r) => !r.measured)).toHaveLength(4);
    for (const r of recs) {
      expect(r.ok).toBe(true);
      expect(r.outputTokens).toBe(16);
      expect(r.outputTokensSource).not.toBe("chunks");
      expect(r.firstTokenNs!).toBeGreaterThan(r.startNs);
      expect(r.endNs).toBeGreaterThanOrEqual(r.firstTokenNs!);
      // The server's own prompt time happens inside the client's TTFT window.
      expect(r.serverTimings?.prompt_ms).toBeTypeOf("number");
      expect((r.firstTokenNs! - r.startNs) / 1e6).toBeGreaterThanOrEqual(r.serverTimings!.prompt_ms! * 0.9);
      expect(r.serverTimings!.predicted_n).toBe(16);
    }
    expect(latency!.crossCheck!.samples).toBe(6);
    expect(latency!.crossCheck!.ttftMinusServerPromptMsP50!).toBeGreaterThan(-1);
    expect(outcome.results.environment.target.model?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(join(out, "report.md"), "utf8")).toContain("**✅ PASS**");
  });
});

describe("a server that dies mid-run", () => {
  it("becomes error records, an aborted test, a fail verdict and exit code 1 within seconds; results are on disk", async () => {
    const out = join(dir, "killed");
    const started = performance.now();
    let killedAt = 0;
    const outcome = await runPipeline(
      {
        suiteFile: suite(
          "killed",
          "name: killed\ntrials: 1\nrequest: { maxTokens: 64, stallTimeoutMs: 5000 }\ntests:\n  - kind: throughput\n    concurrency: 2\n    requests: 100000\n    warmup: 0\n",
        ),
        target: "llama-server",
        modelPath: await tinyModel(),
        serverBin: await findLlamaServerForTests(),
        outDir: out,
        quiet: true,
      },
      {
        log: () => {},
        onTargetStarted: (target) => {
          // Kill the server once a few requests have finished (on disk), whatever the machine's speed.
          const poll = setInterval(() => {
            let lines = 0;
            try {
              lines = readFileSync(join(out, "records.ndjson"), "utf8").split("\n").length - 1;
            } catch {}
            if (lines >= 3) {
              clearInterval(poll);
              killedAt = performance.now();
              process.kill((target as LlamaServerTarget).pid()!, "SIGKILL");
            }
          }, 50);
        },
      },
    );
    const afterKillS = (performance.now() - killedAt) / 1000;
    expect(killedAt).toBeGreaterThan(started);
    // Bounded: the watchdog polls every 250 ms; the stall timeout (5 s) is the backstop.
    expect(afterKillS).toBeLessThan(15);
    expect(outcome.exitCode).toBe(1);
    expect(outcome.results.verdict.overall).toBe("fail");
    const test = outcome.results.tests[0]!;
    expect(test.aborted).toMatch(/exited/);
    expect(test.requests.succeeded).toBeGreaterThan(0);
    expect(test.requests.failed).toBeGreaterThan(0);
    const recs = records(out);
    expect(recs.some((r) => r.ok)).toBe(true);
    expect(recs.some((r) => !r.ok && ["connect", "stream", "cancelled"].includes(r.errorClass!))).toBe(true);
    const onDisk = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(onDisk.verdict.overall).toBe("fail");
  });
});
