/**
 * Faults a real run meets (issue 13), with the real llama-server and the tiny model: a server stopped with SIGSTOP
 * mid-run ends the run as "server stalled" within its bound, and a SIGTERM to tokengate ends it as "interrupted",
 * exit 143, with results and report on disk, which `baseline update` then refuses.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Results } from "../../src/measure/results.js";
import { runPipeline } from "../../src/pipeline.js";
import { REPO_ROOT, runTokengate, STACK_LINE } from "../helpers/cli-run.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";
import { waitGone } from "../helpers/processes.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-faults-"));

function suite(name: string, yaml: string): string {
  const p = join(dir, `${name}.yml`);
  writeFileSync(p, yaml);
  return p;
}

// Long enough that the fault lands mid-test; the request's own stall timeout is longer than the run's stall window,
// so it is the window that ends the run.
const LONG = `name: faults
target: { kind: llama-server }
request: { maxTokens: 64, stallTimeoutMs: 120000 }
policy: { stallWindowS: 3 }
trials: 1
tests:
  - kind: throughput
    concurrency: 2
    requests: 4000
    warmup: 1
  - kind: latency
    promptTokens: [16]
    repetitions: 3
`;

describe("faults end the run with a verdict", () => {
  it("a server stopped with SIGSTOP: 'server stalled', fail, the rest skipped, records on disk, the server stopped", async () => {
    const out = join(dir, "stall");
    let serverPid: number | undefined;
    let stoppedAt = 0;
    const outcome = await runPipeline(
      {
        suiteFile: suite("stall", LONG),
        modelPath: await tinyModel(),
        serverBin: await findLlamaServerForTests(),
        outDir: out,
        quiet: true,
      },
      {
        log: () => {},
        onTargetStarted: (target) => {
          serverPid = target.pid?.();
          setTimeout(() => {
            stoppedAt = performance.now();
            process.kill(serverPid!, "SIGSTOP");
          }, 1500);
        },
      },
    );
    const afterStall = (performance.now() - stoppedAt) / 1000;
    expect(outcome.exitCode).toBe(1);
    expect(outcome.results.status).toBe("aborted");
    expect(outcome.results.statusReason).toMatch(
      /^server stalled: no byte and no finished request for \d+ s with 2 requests in flight \(stall window 3 s, policy.stallWindowS\); a \/health probe then got /,
    );
    expect(outcome.results.verdict.overall).toBe("fail");
    // The test in flight is aborted with what it measured; the latency test after it never ran.
    expect(outcome.results.tests.map((t) => t.name)).toEqual(["throughput"]);
    expect(outcome.results.tests[0]!.aborted).toMatch(/server stalled/);
    expect(outcome.results.tests[0]!.requests.succeeded).toBeGreaterThan(0);
    const onDisk = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
    expect(onDisk.status).toBe("aborted");
    expect(readFileSync(join(out, "records.ndjson"), "utf8").trim().split("\n").length).toBeGreaterThan(1);
    expect(readFileSync(join(out, "report.md"), "utf8")).toMatch(/run aborted: server stalled/);
    // The stated bound: the window (3 s) + one probe (2 s) + the stop (5 s grace, then SIGKILL) + slack.
    expect(afterStall).toBeLessThan(20);
    expect(await waitGone(serverPid!, 10_000)).toBe(true);
  }, 120_000);

  it("SIGTERM to tokengate: status interrupted, exit 143, report written; baseline update refuses the run", async () => {
    const out = join(dir, "interrupted");
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli.ts",
        "run",
        "--suite",
        suite("interrupt", LONG.replace("policy: { stallWindowS: 3 }\n", "")),
        "--model",
        await tinyModel(),
        "--server-bin",
        await findLlamaServerForTests(),
        "--out",
        out,
        "--quiet",
      ],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += String(d);
    });
    const records = join(out, "records.ndjson");
    for (let i = 0; i < 600 && !(existsSync(records) && readFileSync(records, "utf8").split("\n").length > 20); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code, stderr).toBe(143);
    expect(stderr).not.toMatch(STACK_LINE);
    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
    expect(results.status).toBe("interrupted");
    expect(results.statusReason).toBe("interrupted by SIGTERM");
    expect(results.verdict.overall).toBe("fail");
    expect(readFileSync(join(out, "report.md"), "utf8")).toMatch(/run interrupted: interrupted by SIGTERM/);
    const refused = await runTokengate([
      "baseline",
      "update",
      "--from",
      join(out, "results.json"),
      "--to",
      join(dir, "b", "x.json"),
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/interrupted/);
    expect(existsSync(join(dir, "b", "x.json"))).toBe(false);
  }, 120_000);
});
