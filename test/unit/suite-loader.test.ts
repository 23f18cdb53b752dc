import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultSuitePath, loadSuite } from "../../src/config/suite-loader.js";
import { BadInputError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "tg-suite-"));
function suiteFile(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
function errorOf(fn: () => unknown): BadInputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BadInputError) return e;
    throw e;
  }
  throw new Error("expected a BadInputError");
}

describe("suite files", () => {
  it("loads the shipped default suite with defaults filled in", () => {
    const { suite, sha256 } = loadSuite(defaultSuitePath());
    expect(suite.name).toBe("quick");
    expect(suite.tests.map((t) => t.kind)).toEqual(["latency", "throughput"]);
    expect(suite.request.ignoreEos).toBe(true);
    expect(sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("loads every shipped example suite (a typo in one would otherwise reach users first)", () => {
    const dir = dirname(defaultSuitePath());
    const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
    expect(files).toEqual(expect.arrayContaining(["quick.yml", "ramp.yml", "stress.yml", "gpu-gate.yml"]));
    for (const f of files) {
      const { suite } = loadSuite(join(dir, f));
      expect(suite.name, f).toBe(f.replace(/\.ya?ml$/, ""));
      expect(suite.tests.length, f).toBeGreaterThan(0);
    }
  });

  it("accepts JSON as well as YAML", () => {
    const { suite } = loadSuite(
      suiteFile("s.json", JSON.stringify({ tests: [{ kind: "throughput", concurrency: 2 }] })),
    );
    expect(suite.tests[0]).toMatchObject({ kind: "throughput", concurrency: 2, requests: 32 });
  });

  it("names the file, the field path and the value of a bad field", () => {
    const f = suiteFile("bad.yml", "tests:\n  - kind: throughput\n    concurrency: -3\n");
    const e = errorOf(() => loadSuite(f));
    expect(e.subject).toBe(f);
    expect(e.message).toContain("tests[0].concurrency");
    expect(e.message).toContain("-3");
    expect(e.hint).toContain("kind: latency");
    expect(e.exitCode).toBe(2);
  });

  it("refuses an empty server flag (llama-server would stop at it while starting)", () => {
    const f = suiteFile(
      "flag.yml",
      'target:\n  kind: llama-server\n  serverFlags: ["-ngl", ""]\ntests:\n  - kind: latency\n',
    );
    const e = errorOf(() => loadSuite(f));
    expect(e.message).toContain("target.serverFlags[1]");
    expect(e.message).toContain("cannot be empty");
  });

  it("says which field is unknown (a typo) and which test kind does not exist", () => {
    expect(
      errorOf(() => loadSuite(suiteFile("typo.yml", "tests:\n  - kind: latency\n    repetiions: 3\n"))).message,
    ).toContain("unknown field `repetiions`");
    expect(errorOf(() => loadSuite(suiteFile("kind.yml", "tests:\n  - kind: soak\n"))).message).toContain(
      "unknown test kind",
    );
  });

  it("reports YAML syntax errors with a line number, and a missing file with an example", () => {
    expect(errorOf(() => loadSuite(suiteFile("syntax.yml", "tests: [\n  - kind: latency\n"))).message).toMatch(
      /not valid YAML at line \d+/,
    );
    const missing = errorOf(() => loadSuite(join(dir, "nope.yml")));
    expect(missing.message).toBe("suite file not found");
    expect(missing.hint).toContain("--suite");
  });

  it("keeps ordinary YAML anchors (the alias limit is for files that expand aliases of aliases)", () => {
    const f = suiteFile(
      "anchors.yml",
      [
        "tests:",
        "  - kind: ramp",
        "    steps: [1, 2]",
        "    slo: &strict { e2eMs: 500 }",
        "  - kind: stress",
        "    slo: *strict",
        "  - kind: open-loop",
        "    slo: *strict",
        "",
      ].join("\n"),
    );
    const { suite } = loadSuite(f);
    expect(suite.tests.map((t) => ("slo" in t ? t.slo?.e2eMs : undefined))).toEqual([500, 500, 500]);
  });

  it("target expressions are parsed at load: a good suite keeps them as written", () => {
    const { suite } = loadSuite(
      suiteFile(
        "targets-ok.yml",
        'tests:\n  - kind: throughput\n    targets: ["requests_per_s > 1", "ttft_s < 0.5"]\ntargets: [error_rate < 1%]\n',
      ),
    );
    expect(suite.targets).toEqual(["error_rate < 1%"]);
    expect(suite.tests[0]!.targets).toHaveLength(2);
  });

  it("rejects two tests with the same name", () => {
    const e = errorOf(() => loadSuite(suiteFile("dup.yml", "tests:\n  - kind: latency\n  - kind: latency\n")));
    expect(e.message).toContain('"latency" is used twice');
  });
});

describe("the suite's policy block", () => {
  it("reads thresholds as fractions or percents, and gated metrics as metric.stat", async () => {
    const { policyFromBlock, resolvePolicy } = await import("../../src/analysis/policy.js");
    const f = suiteFile(
      "policy.yml",
      [
        "tests:",
        "  - kind: latency",
        "policy:",
        '  warn: "3%"',
        "  fail: 0.06",
        '  runNoise: "2.5%"',
        "  busyMachine: 1",
        "  confirmFails: false",
        "  errorRate: { fail: 0.05 }",
        "  gate: [ttft_ms.p95, output_tokens_per_s.mean]",
        "",
      ].join("\n"),
    );
    const { suite } = loadSuite(f);
    const p = resolvePolicy(policyFromBlock(suite.policy));
    expect(p).toMatchObject({ warn: 0.03, fail: 0.06, runNoise: 0.025, busyMachine: 1, confirmFails: false });
    expect(p.errorRate).toEqual({ warn: 0, fail: 0.05 });
    expect(p.gate).toEqual([
      { metric: "ttft_ms", stat: "p95" },
      { metric: "output_tokens_per_s", stat: "mean" },
    ]);
    expect(p.noiseFloor).toBe(0.02);
  });

  it("names the file, the field and the value of a bad entry, and checks rules across fields", () => {
    const bad = errorOf(() => loadSuite(suiteFile("p1.yml", 'tests:\n  - kind: latency\npolicy:\n  fail: "ten"\n')));
    expect(bad.message).toContain("policy.fail");
    expect(bad.message).toContain("ten");
    const gate = errorOf(() =>
      loadSuite(suiteFile("p2.yml", "tests:\n  - kind: latency\npolicy:\n  gate: [ttft_p95]\n")),
    );
    expect(gate.message).toContain("policy.gate[0]");
    expect(gate.message).toContain("metric.stat, e.g. ttft_ms.p95");
    // fail 4% is below the default warn 5%: the loader says so, naming the file.
    const f3 = suiteFile("p3.yml", "tests:\n  - kind: latency\npolicy:\n  fail: 0.04\n");
    const cross = errorOf(() => loadSuite(f3));
    expect(cross.subject).toBe(f3);
    expect(cross.message).toBe("policy.warn: warn threshold 0.05 is above the fail threshold 0.04");
    expect(cross.hint).toContain("warn 0.05 and fail 0.10");
  });
});

describe("trials", () => {
  it("default to 5 for the gated kinds and 1 for the time-bound ones; the test, the suite and --trials override", async () => {
    const { trialsFor } = await import("../../src/suite/index.js");
    const { suite } = loadSuite(
      suiteFile(
        "trials.yml",
        "tests:\n  - kind: latency\n  - kind: throughput\n  - kind: ramp\n    steps: [1, 2]\n  - kind: latency\n    name: once\n    trials: 1\n",
      ),
    );
    expect(suite.trials).toBeUndefined();
    expect(suite.tests.map((t) => trialsFor(t, suite.trials))).toEqual([5, 5, 1, 1]);
    expect(suite.tests.map((t) => trialsFor(t, 3))).toEqual([3, 3, 3, 1]);
    expect(suite.tests.map((t) => trialsFor(t, 3, 2))).toEqual([2, 2, 2, 2]);
  });
});
