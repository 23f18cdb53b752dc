/**
 * The workflows (CI, check-dist, the examples users copy) and action.yml, checked with GitHub's own parser and schema
 * (@actions/workflow-parser): unknown keys, unclosed expressions or a wrong `runs.using` fail here, not on GitHub.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const root = new URL("../../", import.meta.url).pathname;
const workflowDir = join(root, ".github", "workflows");
const workflows = [
  ...readdirSync(workflowDir).filter((f) => f.endsWith(".yml")),
  ...readdirSync(join(workflowDir, "examples")).map((f) => join("examples", f)),
];

/** Runs GitHub's parser on the files (see test/helpers/github-workflow-check.ts); returns errors per file. */
function check(files: string[]): Record<string, string[]> {
  const r = spawnSync(
    join(root, "node_modules", ".bin", "tsx"),
    [join(root, "test", "helpers", "github-workflow-check.ts"), ...files],
    {
      cwd: root,
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`workflow check failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string[]>;
}

describe("workflows and action.yml", () => {
  it("include CI, check-dist and the user examples", () => {
    expect(workflows).toEqual(
      expect.arrayContaining([
        "ci.yml",
        "check-dist.yml",
        "examples/gpu-self-hosted.yml",
        "examples/fork-safe-run.yml",
        "examples/fork-safe-report.yml",
      ]),
    );
  });

  it("are valid for GitHub Actions (GitHub's parser), and the check catches mistakes", () => {
    const bad = mkdtempSync(join(tmpdir(), "tg-wf-"));
    const badWorkflow = join(bad, "bad.yml");
    writeFileSync(
      badWorkflow,
      readFileSync(join(workflowDir, "ci.yml"), "utf8").replace("permissions:", "permissons:"),
    );
    const badAction = join(bad, "action.yml");
    writeFileSync(badAction, readFileSync(join(root, "action.yml"), "utf8").replace("using: node24", "using: node99"));

    const files = [...workflows.map((f) => join(workflowDir, f)), join(root, "action.yml")];
    const result = check([...files, badWorkflow, badAction]);
    for (const f of files) expect(result[f], f).toEqual([]);
    expect(result[badWorkflow]?.join("\n")).toContain("Unexpected value 'permissons'");
    expect(result[badAction]?.join("\n")).toContain("Unexpected value 'node99'");
  }, 60_000);

  it("every workflow declares its permissions, and the report workflow never checks out code", () => {
    for (const file of workflows) {
      const wf = parse(readFileSync(join(workflowDir, file), "utf8")) as { permissions?: unknown };
      expect(wf.permissions, file).toBeDefined();
    }
    const report = readFileSync(join(workflowDir, "examples", "fork-safe-report.yml"), "utf8");
    expect(report).not.toMatch(/actions\/checkout/);
    expect(parse(report).permissions).toEqual({ actions: "read", "pull-requests": "write" });
  });
});
