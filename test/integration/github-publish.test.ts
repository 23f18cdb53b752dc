/**
 * The publish layer against fakeGitHub (test/helpers/github-fake.ts) with the real clients: @actions/github's Octokit
 * (undici fetch) and @actions/artifact's DefaultArtifactClient (Twirp + Azure Blob SDK + archiver). Every REST request
 * is checked against GitHub's OpenAPI description; `fake.violations` must stay empty.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ArtifactService } from "../../src/publish/artifacts.js";
import { fetchLegFiles, listLegArtifacts, uploadRunArtifact } from "../../src/publish/artifacts.js";
import type { ActionContext } from "../../src/publish/context.js";
import { resolveReportPr, type WorkflowRunEvent } from "../../src/publish/fork.js";
import { commentMarker, renderComment } from "../../src/publish/render.js";
import { findStickyComment, type GitHubClient, upsertStickyComment } from "../../src/publish/sticky-comment.js";
import { toPublishView } from "../../src/publish/view.js";
import { BadInputError } from "../../src/util/errors.js";
import { type FakeGitHub, runnerEnv, startFakeGitHub } from "../helpers/github-fake.js";

const HEAD = "1".repeat(40);
const FORK_HEAD = "2".repeat(40);
let fake: FakeGitHub;
let github: (token: string) => GitHubClient;
let artifacts: ArtifactService;

const fixtureDir = new URL("../fixtures/github/", import.meta.url).pathname;
const view = () => toPublishView(JSON.parse(readFileSync(join(fixtureDir, "results.json"), "utf8")), "fixture");
const marker = commentMarker("quick", "bench");
const target = (issueNumber: number) => ({ owner: "octo-org", repo: "llm-app", issueNumber, marker });

beforeAll(async () => {
  fake = await startFakeGitHub({
    owner: "octo-org",
    repo: "llm-app",
    tokens: {
      ghs_write: { pullRequests: "write", actions: "read" },
      ghs_readonly: { pullRequests: "read", actions: "read" },
      ghs_noactions: { pullRequests: "write", actions: "none" },
    },
    pulls: {
      7: { headSha: HEAD, headRepo: "octo-org/llm-app" },
      8: { headSha: HEAD, headRepo: "octo-org/llm-app" },
      9: { headSha: FORK_HEAD, headRepo: "forker/llm-app" },
    },
  });
  // @actions/github and @actions/artifact read GITHUB_API_URL & co. when they are first imported (module-level
  // defaults), so the environment is set before importing them.
  Object.assign(process.env, runnerEnv(fake));
  const gh = await import("@actions/github");
  const art = await import("@actions/artifact");
  github = (token) => gh.getOctokit(token);
  artifacts = new art.DefaultArtifactClient();
}, 60_000);

afterAll(async () => {
  await fake?.close();
});

afterEach(() => {
  const violations = fake.violations.splice(0);
  expect(violations).toEqual([]);
});

describe("sticky comment", () => {
  it("pages through 250 comments to find its own and updates it in place", async () => {
    for (let i = 0; i < 240; i++) fake.addComment(7, `chatter ${i}`);
    const mine = fake.addComment(7, `old report\n\n${marker}`, "github-actions[bot]", "Bot");
    for (let i = 0; i < 9; i++) fake.addComment(7, `more chatter ${i}`);
    fake.requests.length = 0;

    const { body } = renderComment(view(), { marker, legLabel: "bench" });
    const res = await upsertStickyComment(github("ghs_write"), target(7), body, "always", "fail");

    expect(res).toMatchObject({ action: "updated", id: mine.id });
    expect(res.url).toBe(`https://github.com/octo-org/llm-app/pull/7#issuecomment-${mine.id}`);
    expect(fake.comments.find((c) => c.id === mine.id)?.body).toBe(body);
    const ops = fake.requests.map((r) => `${r.operation} ${r.query}`);
    expect(ops).toEqual([
      "GET /repos/{owner}/{repo}/issues/{issue_number}/comments ?per_page=100",
      "GET /repos/{owner}/{repo}/issues/{issue_number}/comments ?per_page=100&page=2",
      "GET /repos/{owner}/{repo}/issues/{issue_number}/comments ?per_page=100&page=3",
      "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id} ",
    ]);
  });

  it("creates the comment once, then updates it, and skips an identical update", async () => {
    const client = github("ghs_write");
    const { body } = renderComment(view(), { marker, legLabel: "bench" });
    const first = await upsertStickyComment(client, target(8), body, "always", "fail");
    expect(first.action).toBe("created");
    const second = await upsertStickyComment(client, target(8), `${body.replace("fail", "FAIL")}`, "always", "fail");
    expect(second).toMatchObject({ action: "updated", id: first.id });
    fake.requests.length = 0;
    const third = await upsertStickyComment(client, target(8), `${body.replace("fail", "FAIL")}`, "always", "fail");
    expect(third).toMatchObject({ action: "unchanged", id: first.id });
    expect(fake.requests.map((r) => r.method)).toEqual(["GET"]);
    expect(fake.comments.filter((c) => c.issue === 8)).toHaveLength(1);
  });

  it("legs keep separate comments: another marker creates another comment", async () => {
    const other = commentMarker("quick", "bench-1a2b3c4d");
    const res = await upsertStickyComment(
      github("ghs_write"),
      { ...target(8), marker: other },
      `x\n${other}`,
      "always",
      "pass",
    );
    expect(res.action).toBe("created");
    expect(fake.comments.filter((c) => c.issue === 8)).toHaveLength(2);
    expect((await findStickyComment(github("ghs_write"), target(8)))?.body).toContain(marker);
  });

  it("comment-mode on-change creates nothing on pass, on-alert makes no API call on pass", async () => {
    const fresh = commentMarker("quick", "fresh");
    fake.requests.length = 0;
    const onChange = await upsertStickyComment(
      github("ghs_write"),
      { ...target(8), marker: fresh },
      `x\n${fresh}`,
      "on-change",
      "pass",
    );
    expect(onChange.action).toBe("skipped");
    expect(fake.requests.every((r) => r.method === "GET")).toBe(true);
    fake.requests.length = 0;
    const onAlert = await upsertStickyComment(
      github("ghs_write"),
      { ...target(8), marker: fresh },
      `x\n${fresh}`,
      "on-alert",
      "pass",
    );
    expect(onAlert.action).toBe("skipped");
    expect(fake.requests).toHaveLength(0);
  });

  it("a read-only token gets GitHub's 403 and an error that names the permissions block", async () => {
    const err = await upsertStickyComment(
      github("ghs_readonly"),
      target(8),
      `new\n${commentMarker("q", "ro")}`,
      "always",
      "fail",
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    const e = err as BadInputError;
    expect(e.subject).toBe("permissions");
    expect(e.message).toContain('403 "Resource not accessible by integration"');
    expect(e.message).toContain("issues=write; pull_requests=write");
    expect(e.hint).toContain("pull-requests: write");
  });

  it("a PR that does not exist gets 404 and says to check the number", async () => {
    const err = await upsertStickyComment(github("ghs_write"), target(4040), `x\n${marker}`, "always", "fail").catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).message).toMatch(/list the comments of #4040: GitHub answered 404 "Not Found"/);
    expect((err as BadInputError).hint).toMatch(/pull request exists/);
  });

  it("a bad token gets 401 and points at the github-token input", async () => {
    const err = await upsertStickyComment(github("ghs_wrong"), target(8), `x\n${marker}`, "always", "fail").catch(
      (e: unknown) => e,
    );
    expect((err as BadInputError).subject).toBe("input github-token");
  });
});

describe("artifacts", () => {
  const outDir = mkdtempSync(join(tmpdir(), "tg-art-"));
  const elsewhere = mkdtempSync(join(tmpdir(), "tg-log-"));

  it("uploads results, report and pr.json through the artifact service, and report mode reads them back", async () => {
    writeFileSync(join(outDir, "results.json"), readFileSync(join(fixtureDir, "results.json")));
    writeFileSync(join(outDir, "report.md"), readFileSync(join(fixtureDir, "report.md")));
    writeFileSync(join(outDir, "records.ndjson"), '{"id":1}\n'.repeat(5000));
    writeFileSync(
      join(outDir, "pr.json"),
      JSON.stringify({
        schemaVersion: 1,
        event: "pull_request",
        leg: { id: "bench", label: "bench" },
        pullRequest: { number: 9, headSha: FORK_HEAD, headRepo: "forker/llm-app", baseRepo: "octo-org/llm-app" },
      }),
    );
    writeFileSync(join(elsewhere, "llama-server.log"), "server log\n");

    const up = await uploadRunArtifact(
      artifacts,
      "tokengate-bench",
      outDir,
      ["results.json", "report.md", "records.ndjson", "pr.json"]
        .map((f) => join(outDir, f))
        .concat(join(elsewhere, "llama-server.log"), join(elsewhere, "missing.log")),
      5,
    );
    expect(up.id).toBeGreaterThan(0);
    const stored = fake.artifacts.find((a) => a.id === up.id)!;
    expect(stored).toMatchObject({ name: "tokengate-bench", finalized: true });
    const create = fake.requests.find((r) => r.operation === "twirp:CreateArtifact")!;
    expect((create.body as { expires_at?: string }).expires_at).toBeTruthy(); // retention was passed on

    const run = { token: "ghs_write", owner: "octo-org", repo: "llm-app", runId: fake.runId };
    const listed = await listLegArtifacts(artifacts, run, "tokengate");
    expect(listed.map((a) => a.name)).toEqual(["tokengate-bench"]);
    const files = await fetchLegFiles(artifacts, run, listed[0]!);
    expect(files.results?.equals(readFileSync(join(fixtureDir, "results.json")))).toBe(true);
    expect(JSON.parse(files.pr!.toString()).pullRequest.number).toBe(9);
  });

  it("a second upload with the same name is refused the way GitHub does (409) and says to set a leg", async () => {
    const err = await uploadRunArtifact(artifacts, "tokengate-bench", outDir, [join(outDir, "results.json")], 0).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).subject).toBe("input artifact-name");
    expect((err as BadInputError).hint).toContain("leg:");
  });

  it("reading another run's artifacts without actions: read names the permission", async () => {
    const run = { token: "ghs_noactions", owner: "octo-org", repo: "llm-app", runId: fake.runId };
    const err = await listLegArtifacts(artifacts, run, "tokengate").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).hint).toContain("actions: read");
  });
});

describe("resolveReportPr (fork PRs)", () => {
  const ctx: ActionContext = {
    eventName: "workflow_run",
    payload: {},
    repo: { owner: "octo-org", repo: "llm-app" },
    serverUrl: "https://github.com",
    runId: 99,
    runAttempt: 1,
    job: "report",
    sha: HEAD,
  };
  const wr = (over: Partial<WorkflowRunEvent> = {}): WorkflowRunEvent => ({
    id: fake.runId,
    head_sha: FORK_HEAD,
    event: "pull_request",
    html_url: `https://github.com/octo-org/llm-app/actions/runs/${fake.runId}`,
    head_repository: { full_name: "forker/llm-app" },
    pull_requests: [],
    ...over,
  });
  const prFile = (number: number) => ({
    schemaVersion: 1 as const,
    event: "pull_request",
    leg: { id: "bench", label: "bench" },
    pullRequest: { number, headSha: FORK_HEAD, headRepo: "forker/llm-app", baseRepo: "octo-org/llm-app" },
  });

  it("accepts the artifact's PR number only when the API confirms the measured head", async () => {
    expect(await resolveReportPr(github("ghs_write"), ctx, wr(), prFile(9))).toEqual({ number: 9 });
    // PR 7 exists but its head is another commit: a claim pointing at someone else's PR is not followed
    expect(await resolveReportPr(github("ghs_write"), ctx, wr(), prFile(7))).toMatchObject({
      skip: expect.stringContaining("PR #7 is at"),
    });
  });

  it("prefers the PRs listed in the event, and skips runs that were not pull requests", async () => {
    expect(
      await resolveReportPr(
        github("ghs_write"),
        ctx,
        wr({ pull_requests: [{ number: 8, head: { sha: FORK_HEAD } }] }),
        prFile(9),
      ),
    ).toEqual({ number: 8 });
    expect(await resolveReportPr(github("ghs_write"), ctx, wr({ event: "push" }), prFile(9))).toMatchObject({
      skip: expect.stringContaining("push"),
    });
  });

  it("a PR number that does not exist is a 404 with a hint", async () => {
    const err = await resolveReportPr(github("ghs_write"), ctx, wr(), prFile(4040)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).message).toMatch(/#4040.*404/);
  });
});
