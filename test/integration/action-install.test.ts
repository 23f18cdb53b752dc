/**
 * `uses: OWNER/tokengate@v0` on a plain runner checks out the action without node_modules. The in-process target
 * needs node-llama-cpp next to dist/ (it is the one dependency the bundle cannot carry), so the action installs the
 * version package.json pins from the npm registry on first need. This test runs the bundled action from such a bare
 * copy, against the real npm registry (the one this machine reaches) and the fake GitHub.
 */
import { cpSync, existsSync, mkdtempSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureDist, REPO_ROOT, runAction } from "../helpers/github-action-run.js";
import { runnerEnv, startFakeGitHub } from "../helpers/github-fake.js";

beforeAll(() => ensureDist(), 300_000);

/** What npm needs to reach the registry from this machine (a runner has these in its environment too). */
function networkEnv(): Record<string, string> {
  const keys = [
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
  ];
  return Object.fromEntries(keys.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
}

describe("the action checked out without node_modules", () => {
  it("installs the pinned node-llama-cpp next to dist/ and runs the in-process target", async () => {
    const action = mkdtempSync(join(tmpdir(), "tg-bare-action-"));
    for (const p of ["dist", "package.json", "action.yml", "examples", "schema"]) {
      cpSync(join(REPO_ROOT, p), join(action, p), { recursive: true });
    }
    expect(existsSync(join(action, "node_modules"))).toBe(false);
    const fake = await startFakeGitHub({ owner: "o", repo: "r", tokens: {}, pulls: {} });
    try {
      const ws = mkdtempSync(join(tmpdir(), "tg-ws-"));
      const run = await runAction({
        actionDir: action,
        env: runnerEnv(fake, { GITHUB_WORKSPACE: ws, GITHUB_SHA: "1".repeat(40), ...networkEnv() }),
        eventName: "push",
        event: {},
        inputs: {
          suite: join(REPO_ROOT, "test", "fixtures", "github", "tiny-suite.yml"),
          "comment-mode": "off",
          "fail-on": "never",
          matrix: "null",
        },
        timeoutMs: 280_000,
      });
      expect(run.code, run.log).toBe(0);
      expect(run.log).toContain("installing node-llama-cpp@3.21.1");
      const installed = realpathSync(join(action, "node_modules", "node-llama-cpp"));
      expect(installed).toBe(join(action, ".tokengate-deps", "node_modules", "node-llama-cpp"));
      expect(["pass", "warn", "fail"]).toContain(run.outputs.verdict);
      expect(existsSync(run.outputs["results-path"]!)).toBe(true);
    } finally {
      await fake.close();
    }
  }, 300_000);
});
