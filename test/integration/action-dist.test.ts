/**
 * The bundled Action end to end: dist/index.js and dist/post.js under Node 24, with INPUT_* / GITHUB_* variables and an
 * event payload, against fakeGitHub (REST checked against GitHub's OpenAPI description, the Twirp artifact service,
 * a blob store). `mode: run` runs the real pipeline: the embedded synthetic tiny model in-process, a few requests
 * (test/fixtures/github/tiny-suite.yml). `mode: report` needs no pipeline: it reads the artifact a run left.
 *
 * The PR comment that report mode posts for the fixture results is kept as a reviewed snapshot
 * (test/__snapshots__/action-report-comment.md).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureDist, REPO_ROOT, runAction } from "../helpers/github-action-run.js";
import { type FakeGitHub, runnerEnv, startFakeGitHub } from "../helpers/github-fake.js";

const OWNER = "octo-org";
const REPO = "llm-app";
const HEAD = "1111111111111111111111111111111111111111";
const FORK_HEAD = "2222222222222222222222222222222222222222";
const SUITE = join(REPO_ROOT, "test", "fixtures", "github", "tiny-suite.yml");
const FIXTURES = join(REPO_ROOT, "test", "fixtures", "github");
const TOKENS = {
  ghs_write: { pullRequests: "write", actions: "read" },
  ghs_readonly: { pullRequests: "read", actions: "read" },
} as const;

const fakes: FakeGitHub[] = [];
async function fakeGitHub(extra: Partial<Parameters<typeof startFakeGitHub>[0]> = {}): Promise<FakeGitHub> {
  const fake = await startFakeGitHub({
    owner: OWNER,
    repo: REPO,
    tokens: { ...TOKENS },
    pulls: {
      7: { headSha: HEAD, headRepo: `${OWNER}/${REPO}` },
      9: { headSha: FORK_HEAD, headRepo: `forker/${REPO}` },
    },
    ...extra,
  });
  fakes.push(fake);
  return fake;
}

afterEach(async () => {
  for (const f of fakes.splice(0)) {
    expect(f.violations).toEqual([]);
    await f.close();
  }
});

function prEvent(number: number, headSha: string, headRepo: string) {
  return {
    action: "synchronize",
    number,
    pull_request: {
      number,
      merge_commit_sha: "3333333333333333333333333333333333333333",
      head: { sha: headSha, ref: "feature", repo: { full_name: headRepo } },
      base: { sha: "4444444444444444444444444444444444444444", ref: "main", repo: { full_name: `${OWNER}/${REPO}` } },
    },
    repository: { full_name: `${OWNER}/${REPO}`, name: REPO, owner: { login: OWNER } },
  };
}

function workflowRunEvent(fake: FakeGitHub, headSha: string, headRepo: string, pullRequests: unknown[] = []) {
  return {
    action: "completed",
    workflow_run: {
      id: fake.runId,
      head_sha: headSha,
      event: "pull_request",
      conclusion: "failure",
      html_url: `https://github.com/${OWNER}/${REPO}/actions/runs/${fake.runId}`,
      head_repository: { full_name: headRepo },
      pull_requests: pullRequests,
    },
    repository: { full_name: `${OWNER}/${REPO}`, name: REPO, owner: { login: OWNER } },
  };
}

/** Puts files into the fake's artifact store with the real @actions/artifact client, as a `mode: run` step would. */
async function uploadArtifact(fake: FakeGitHub, name: string, files: Record<string, string | Buffer>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "tg-upload-"));
  for (const [f, content] of Object.entries(files)) writeFileSync(join(dir, f), content);
  // The upload path reads these at call time (the REST defaults of @actions/github are not involved).
  Object.assign(process.env, {
    ACTIONS_RUNTIME_TOKEN: fake.runtimeToken,
    ACTIONS_RESULTS_URL: fake.resultsUrl,
    GITHUB_SERVER_URL: "https://github.com",
  });
  const { DefaultArtifactClient } = await import("@actions/artifact");
  // @actions/core logs workflow commands to stdout; in a test process that is noise.
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    await new DefaultArtifactClient().uploadArtifact(
      name,
      Object.keys(files).map((f) => join(dir, f)),
      dir,
    );
  } finally {
    process.stdout.write = write;
  }
}

function forkPrFile(number: number) {
  return JSON.stringify({
    schemaVersion: 1,
    event: "pull_request",
    leg: { id: "bench", label: "bench" },
    pullRequest: { number, headSha: FORK_HEAD, headRepo: `forker/${REPO}`, baseRepo: `${OWNER}/${REPO}` },
  });
}

function workspace(): string {
  return mkdtempSync(join(tmpdir(), "tg-ws-"));
}

beforeAll(() => {
  ensureDist();
}, 300_000);

describe("mode: run", () => {
  it("runs the suite, uploads the artifact, updates its sticky comment in place, writes outputs and summary", async () => {
    const fake = await fakeGitHub();
    // 150 comments by people, then the comment an earlier push left (page 2 of 100), then more.
    for (let i = 0; i < 150; i++) fake.addComment(7, `looks good ${i}`);
    const old = fake.addComment(7, "old numbers\n\n<!-- tokengate:action-e2e:bench -->", "github-actions[bot]", "Bot");
    for (let i = 0; i < 5; i++) fake.addComment(7, `nit ${i}`);
    const ws = workspace();

    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: ws, GITHUB_SHA: HEAD }),
      event: prEvent(7, HEAD, `${OWNER}/${REPO}`),
      inputs: { suite: SUITE, "github-token": "ghs_write", matrix: "null" },
    });

    const verdict = run.outputs.verdict;
    expect(["pass", "warn", "fail"]).toContain(verdict);
    expect(run.code, run.log).toBe(verdict === "fail" ? 1 : 0);
    expect(run.outputs["results-path"]).toBe(join(ws, "tokengate-results", "bench", "results.json"));
    expect(JSON.parse(readFileSync(run.outputs["results-path"]!, "utf8")).suite.name).toBe("action-e2e");
    expect(existsSync(run.outputs["report-path"]!)).toBe(true);

    // The sticky comment was found on page 2 and edited; no second comment appeared.
    expect(run.outputs["comment-id"]).toBe(String(old.id));
    expect(run.outputs["comment-url"]).toBe(`https://github.com/${OWNER}/${REPO}/pull/7#issuecomment-${old.id}`);
    const mine = fake.comments.filter((c) => c.body.includes("<!-- tokengate:"));
    expect(mine).toHaveLength(1);
    expect(mine[0]!.body).toContain(`tokengate: **${verdict}** · action\\-e2e · bench`);
    expect(mine[0]!.body.trimEnd().endsWith("<!-- tokengate:action-e2e:bench -->")).toBe(true);
    expect(fake.requests.filter((r) => r.operation.startsWith("POST "))).toEqual([]);

    // The artifact holds results, records, report and pr.json; the comment links to it.
    const art = fake.artifacts.find((a) => a.name === "tokengate-bench");
    expect(art?.finalized).toBe(true);
    const zip = fake.blobs.get(art!.blobKey)!.toString("latin1");
    for (const f of ["results.json", "records.ndjson", "report.md", "pr.json"]) expect(zip).toContain(f);
    expect(mine[0]!.body).toContain(`/actions/runs/${fake.runId}/artifacts/${art!.id}`);

    expect(run.summary).toContain(`tokengate: **${verdict}**`);
    expect(run.summary).toContain("<summary>Full report</summary>");
    // The post step will look for processes carrying this id; the pipeline stopped its model child already.
    expect(run.state["tokengate-owner-id"]).toMatch(/^[0-9a-f-]{36}$/);
    // ... and the pid of the model server it started (the in-process child), with its start time.
    const servers = JSON.parse(run.state["tokengate-server-pids"] ?? "[]") as { pid: number; start: string }[];
    expect(servers).toHaveLength(1);
    expect(servers[0]!.start).toMatch(/^\d+$/);
  });

  it("on a fork's PR it does not try to comment; the artifact carries pr.json for the report workflow", async () => {
    const fake = await fakeGitHub();
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_SHA: FORK_HEAD }),
      event: prEvent(9, FORK_HEAD, `forker/${REPO}`),
      inputs: { suite: SUITE, "github-token": "ghs_readonly", "fail-on": "never", matrix: "null" },
    });
    expect(run.code, run.log).toBe(0);
    expect(fake.requests.filter((r) => r.operation.includes("/issues/"))).toEqual([]);
    expect(run.log).toContain("::notice::tokengate: fork pull request");
    expect(run.summary).toContain("the pull request comes from a fork");
    const art = fake.artifacts.find((a) => a.name === "tokengate-bench");
    expect(art?.finalized).toBe(true);
    // ... and the report workflow can use it: mode report on workflow_run comments on PR 9.
    const report = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_RUN_ID: "5000" }),
      eventName: "workflow_run",
      event: workflowRunEvent(fake, FORK_HEAD, `forker/${REPO}`),
      inputs: { mode: "report", "github-token": "ghs_write", "fail-on": "never" },
    });
    expect(report.code, report.log).toBe(0);
    const posted = fake.comments.filter((c) => c.issue === 9);
    expect(posted).toHaveLength(1);
    expect(posted[0]!.body).toContain("<!-- tokengate:action-e2e:bench -->");
    expect(report.outputs["comment-id"]).toBe(String(posted[0]!.id));
  });

  it("without a token and with an artifact name already taken, the step fails saying what to change, after producing results and summary", async () => {
    const fake = await fakeGitHub();
    await uploadArtifact(fake, "tokengate-bench", { "other.txt": "an earlier step of this job used the same leg" });
    const ws = workspace();
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: ws, GITHUB_SHA: HEAD }),
      event: prEvent(7, HEAD, `${OWNER}/${REPO}`),
      inputs: { suite: SUITE, "github-token": "", "fail-on": "never", matrix: "null" },
    });
    expect(run.code).toBe(1);
    const errors = run.log
      .split("\n")
      .filter((l) => l.startsWith("::error::"))
      .join("\n");
    expect(errors).toContain(
      "input artifact-name: could not upload the artifact tokengate-bench: an artifact with this name already exists",
    );
    expect(errors).toContain("leg:");
    expect(errors).toContain("input github-token: is empty");
    expect(errors).toContain("pull-requests: write");
    expect(existsSync(join(ws, "tokengate-results", "bench", "results.json"))).toBe(true);
    expect(run.outputs.verdict).toMatch(/^(pass|warn|fail)$/);
    expect(run.summary).toContain("tokengate: **");
    expect(run.summary).toContain("already exists");
  });

  it("refuses a pull_request_target run whose checkout is the PR head, before running anything", async () => {
    const fake = await fakeGitHub();
    const ws = workspace();
    const git = (...args: string[]) => spawnSync("git", args, { cwd: ws, encoding: "utf8" });
    git("init", "-q");
    writeFileSync(join(ws, "x.txt"), "pr code");
    git("add", "x.txt");
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "pr");
    const head = git("rev-parse", "HEAD").stdout.trim();
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: ws, GITHUB_SHA: "4444444444444444444444444444444444444444" }),
      eventName: "pull_request_target",
      event: prEvent(9, head, `forker/${REPO}`),
      inputs: { suite: SUITE, "github-token": "ghs_write", matrix: "null" },
    });
    expect(run.code).toBe(1);
    expect(run.log).toContain("::error::event pull_request_target: refusing to run");
    expect(run.log).toContain("mode: report");
    expect(existsSync(join(ws, "tokengate-results"))).toBe(false);
    expect(fake.requests).toEqual([]);
  });
});

describe("mode: ab and mode: baseline", () => {
  /** A git repository whose main branch has the suite without request batching; the head turns it on. */
  function repoWithSuiteChange(): { ws: string; suite: string } {
    const ws = workspace();
    const git = (...args: string[]) => {
      const r = spawnSync("git", args, { cwd: ws, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
    };
    const base = readFileSync(SUITE, "utf8");
    const suite = join(ws, "perf", "suite.yml");
    spawnSync("mkdir", ["-p", join(ws, "perf")]);
    writeFileSync(suite, base);
    git("init", "-q", "-b", "main");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", "perf/suite.yml");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "base");
    // The pull request's change: the seed's request batching, which holds each prompt up to 40 ms.
    writeFileSync(suite, base.replace("  threads: 2", "  threads: 2\n  batching: { maxBatchSize: 4, maxWaitMs: 40 }"));
    return { ws, suite };
  }

  it("mode ab measures the base branch's suite against the head's on this runner and leads with What changed", async () => {
    const fake = await fakeGitHub();
    const { ws, suite } = repoWithSuiteChange();
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: ws, GITHUB_SHA: HEAD, GITHUB_BASE_REF: "main" }),
      event: prEvent(7, HEAD, `${OWNER}/${REPO}`),
      inputs: { mode: "ab", suite, "base-ref": "main", pairs: "2", "github-token": "ghs_write", matrix: "null" },
    });
    const verdict = run.outputs.verdict;
    expect(run.code, run.log).toBe(verdict === "fail" ? 1 : 0);
    const results = JSON.parse(readFileSync(run.outputs["results-path"]!, "utf8"));
    expect(results.ab.order).toEqual(["A", "B", "B", "A"]);
    expect(results.verdict.changes.map((c: { label: string }) => c.label)).toContain("target batching");
    expect(run.summary).toContain("A/B: the base arm uses main:perf/suite.yml.");
    const comment = fake.comments.find((c) => c.body.includes("<!-- tokengate:"))!;
    expect(comment.body).toMatch(/\*\*What changed:\*\* .*target batching false → true/);
    // Every run's results travel in the artifact.
    const art = fake.artifacts.find((a) => a.name === "tokengate-bench")!;
    const zip = fake.blobs.get(art.blobKey)!.toString("latin1");
    for (const f of ["runs/A-1/results.json", "runs/B-2/results.json", "report.md"]) expect(zip).toContain(f);
  });

  it("mode ab with identical arms is bad input naming what to vary, and nothing is measured", async () => {
    const fake = await fakeGitHub();
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_SHA: HEAD }),
      event: prEvent(7, HEAD, `${OWNER}/${REPO}`),
      inputs: { mode: "ab", suite: SUITE, "github-token": "ghs_write", matrix: "null" },
    });
    expect(run.code).toBe(1);
    expect(run.log).toMatch(/::error::.*arms A \(base\) and B \(head\) are identical/);
    expect(fake.comments.filter((c) => c.body.includes("<!-- tokengate:"))).toEqual([]);
  });

  it("mode baseline uploads a candidate baseline of separate runs and says how to commit it", async () => {
    const fake = await fakeGitHub();
    const ws = workspace();
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: ws, GITHUB_SHA: HEAD }),
      event: prEvent(7, HEAD, `${OWNER}/${REPO}`),
      inputs: { mode: "baseline", suite: SUITE, runs: "2", "github-token": "ghs_write", matrix: "null" },
    });
    expect(run.code, run.log).toBe(0);
    const candidate = join(ws, "tokengate-results", "bench", "action-e2e.json");
    const baseline = JSON.parse(readFileSync(candidate, "utf8"));
    expect(baseline.baselineVersion).toBe(1);
    expect(baseline.moreRuns).toHaveLength(1);
    expect(run.summary).toContain("Candidate baseline `action-e2e.json` (2 runs) is in the artifact");
    expect(run.summary).toContain("baselines/action-e2e.json");
    const art = fake.artifacts.find((a) => a.name === "tokengate-bench")!;
    expect(fake.blobs.get(art.blobKey)!.toString("latin1")).toContain("action-e2e.json");
  });
});

describe("mode: report (fork-safe)", () => {
  const fixtureArtifact = (prNumber: number) => ({
    "results.json": readFileSync(join(FIXTURES, "results.json")),
    "report.md": readFileSync(join(FIXTURES, "report.md")),
    "pr.json": forkPrFile(prNumber),
  });

  it("posts the comment for a fork's artifact, escaped (reviewed snapshot)", async () => {
    const fake = await fakeGitHub();
    await uploadArtifact(fake, "tokengate-bench", fixtureArtifact(9));
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_RUN_ID: "5000" }),
      eventName: "workflow_run",
      event: workflowRunEvent(fake, FORK_HEAD, `forker/${REPO}`),
      inputs: { mode: "report", "github-token": "ghs_write" },
    });
    // The fixture's verdict is fail and fail-on defaults to fail: the step fails, after commenting.
    expect(run.code, run.log).toBe(1);
    expect(run.log).toContain("::error::tokengate verdict: fail (fail-on: fail)");
    expect(run.outputs.verdict).toBe("fail");
    const posted = fake.comments.filter((c) => c.issue === 9);
    expect(posted).toHaveLength(1);
    await expect(posted[0]!.body).toMatchFileSnapshot("../__snapshots__/action-report-comment.md");
    // Annotations for the regressions (error for fail, warning for warn).
    expect(run.log.match(/^::error title=tokengate fail/gm)).toHaveLength(2);
    expect(run.log.match(/^::warning title=tokengate warn/gm)).toHaveLength(1);
    expect(run.summary).toContain("tokengate: **fail** · quick · bench");
  });

  it("with a read-only token: GitHub's 403, a hint about permissions, and the summary still written", async () => {
    const fake = await fakeGitHub();
    await uploadArtifact(fake, "tokengate-bench", fixtureArtifact(9));
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_RUN_ID: "5000" }),
      eventName: "workflow_run",
      event: workflowRunEvent(fake, FORK_HEAD, `forker/${REPO}`),
      inputs: { mode: "report", "github-token": "ghs_readonly", "fail-on": "never" },
    });
    expect(run.code).toBe(1);
    expect(run.log).toContain(
      '::error::permissions: could not create the PR comment on #9: GitHub answered 403 "Resource not accessible by integration"',
    );
    expect(run.log).toContain("pull-requests: write");
    expect(fake.comments).toEqual([]);
    expect(run.summary).toContain("tokengate: **fail** · quick · bench");
    expect(run.summary).toContain("Resource not accessible by integration");
  });

  it("a PR number that does not exist: 404 with a hint, summary still written", async () => {
    const fake = await fakeGitHub();
    await uploadArtifact(fake, "tokengate-bench", fixtureArtifact(4040));
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_RUN_ID: "5000" }),
      eventName: "workflow_run",
      event: workflowRunEvent(fake, FORK_HEAD, `forker/${REPO}`),
      inputs: { mode: "report", "github-token": "ghs_write", "fail-on": "never" },
    });
    expect(run.code).toBe(1);
    expect(run.log).toMatch(/::error::GitHub API: could not read pull request #4040 .*404 "Not Found"/);
    expect(run.summary).toContain("tokengate: **fail**");
  });

  it("refuses a hostile artifact (a zip bomb in results.json) without crashing", async () => {
    const fake = await fakeGitHub();
    await uploadArtifact(fake, "tokengate-bench", {
      "results.json": Buffer.alloc(40 * 1024 * 1024, 0x20),
      "pr.json": forkPrFile(9),
    });
    const run = await runAction({
      env: runnerEnv(fake, { GITHUB_WORKSPACE: workspace(), GITHUB_RUN_ID: "5000" }),
      eventName: "workflow_run",
      event: workflowRunEvent(fake, FORK_HEAD, `forker/${REPO}`),
      inputs: { mode: "report", "github-token": "ghs_write" },
    });
    expect(run.code).toBe(1);
    expect(run.log).toMatch(/::error::artifact tokengate-bench: .*over the 33554432-byte limit/);
    expect(fake.comments).toEqual([]);
    expect(run.summary).toContain("nothing to report");
  });
});

describe("post step", () => {
  it("stops processes the main step left running (SIGTERM, then SIGKILL), and nothing else", async () => {
    const owner = "0f0e0d0c-0b0a-4908-8706-050403020100";
    const start = (env: Record<string, string>, ignoreTerm: boolean) =>
      spawn(
        process.execPath,
        ["-e", `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ""} setInterval(() => {}, 1000)`],
        {
          env: { ...process.env, ...env },
          stdio: "ignore",
        },
      );
    const polite = start({ TOKENGATE_ACTION_OWNER: owner }, false);
    const stubborn = start({ TOKENGATE_ACTION_OWNER: owner }, true);
    // A server started with an environment of its own: found through the pid the main step recorded.
    const recordedOnly = start({}, false);
    // A recorded pid whose start time does not match: the pid was reused by another process, leave it alone.
    const unrelated = start({ TOKENGATE_ACTION_OWNER: "another-run" }, false);
    const exited = (c: ReturnType<typeof start>) =>
      new Promise((r) =>
        c.exitCode !== null || c.signalCode !== null ? r(c.signalCode) : c.once("exit", (_code, sig) => r(sig)),
      );
    try {
      await new Promise((r) => setTimeout(r, 300)); // let them install their handlers
      const startTime = (pid: number) => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[19]!;
      const recorded = [
        { pid: recordedOnly.pid, start: startTime(recordedOnly.pid!) },
        { pid: unrelated.pid, start: "1" },
      ];
      const run = await runAction({
        entry: "post.js",
        env: { "STATE_tokengate-owner-id": owner, "STATE_tokengate-server-pids": JSON.stringify(recorded) },
      });
      expect(run.code, run.log).toBe(0);
      expect(await exited(polite)).toBe("SIGTERM");
      expect(await exited(stubborn)).toBe("SIGKILL");
      expect(await exited(recordedOnly)).toBe("SIGTERM");
      expect(unrelated.exitCode === null && unrelated.signalCode === null).toBe(true);
      expect(run.log).toContain(`pid ${stubborn.pid}) ignored SIGTERM`);
    } finally {
      for (const c of [polite, stubborn, recordedOnly, unrelated]) c.kill("SIGKILL");
    }
  });

  it("does nothing when the main step started nothing", async () => {
    const run = await runAction({ entry: "post.js", env: {} });
    expect(run.code).toBe(0);
    expect(run.log).toContain("started nothing");
  });
});
