import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultSuitePath, loadSuite, validateSuite } from "../../src/config/suite-loader.js";
import { ignoredOptions, planTarget } from "../../src/target/index.js";

const dir = mkdtempSync(join(tmpdir(), "tg-plan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const examples = dirname(defaultSuitePath());

describe("options the chosen target does not use", () => {
  it("are said in one line when the command line picks another kind than the suite's options are for", async () => {
    // stress.yml sets target.threads for a target tokengate starts; run against an external server, it is ignored.
    const { suite } = loadSuite(join(examples, "stress.yml"));
    const lines: string[] = [];
    const plan = await planTarget(
      suite,
      { outDir: dir, target: "external", url: "http://127.0.0.1:1", modelPath: "/m.gguf" },
      (l) => lines.push(l),
    );
    expect(plan.kind).toBe("external");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^the external target ignores target\.threads \(.+\), --model \(only for in-process and llama-server\)$/,
    );
  });

  it("a shipped GPU suite (serverFlags) run against an external server warns instead of failing", async () => {
    const { suite } = loadSuite(join(examples, "gpu-gate.yml"));
    const lines: string[] = [];
    await planTarget(suite, { outDir: dir, target: "external", url: "http://127.0.0.1:1" }, (l) => lines.push(l));
    expect(lines).toEqual([expect.stringMatching(/^the external target ignores target\.serverFlags \(/)]);
  });

  it("flags for the external target with a target tokengate starts, and in-process options with llama-server", () => {
    const suite = validateSuite({ target: { sequences: 4, contextSize: 1024 }, tests: [{ kind: "latency" }] }, "s.yml");
    const ignored = ignoredOptions("llama-server", suite, {
      outDir: dir,
      url: "http://127.0.0.1:1",
      waitForServerMs: 5000,
      apiKeyEnv: "K",
    });
    expect(ignored.map((i) => i.split(" ")[0])).toEqual([
      "target.sequences",
      "target.contextSize",
      "--url",
      "--api-key-env",
      "--wait-for-server",
    ]);
    expect(ignored[0]).toContain("serverFlags: [--parallel, N]");
  });

  it("nothing is said when every option applies (each shipped example with its own kind)", async () => {
    for (const f of readdirSync(examples).filter((n) => n.endsWith(".yml"))) {
      const { suite } = loadSuite(join(examples, f));
      const kind = suite.target.kind ?? "in-process";
      expect(ignoredOptions(kind, suite, { outDir: dir }), f).toEqual([]);
    }
  });
});
