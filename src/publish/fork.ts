/**
 * Fork safety. Background (GitHub docs; shared research peers-ci-gating.md §4.4):
 * - On `pull_request` from a fork, GITHUB_TOKEN is read-only whatever `permissions:` says, so `mode: run` cannot comment.
 *   It puts everything into its artifact, plus pr.json (which PR and leg it measured).
 * - A `workflow_run` workflow (from the default branch, with a write token) then runs `mode: report`: it downloads that
 *   artifact and comments. The artifact is untrusted: the fork's version of the workflow decided its contents. So
 *   pr.json is validated and only used as a claim that is checked against the API (the PR's head must be the commit the
 *   run measured, which the trusted event names), and results.json goes through the capped view schema and escaping.
 * - `pull_request_target` runs with a write token in the base repository's context; checking out and running the PR's
 *   head there is the "pwn request" pattern. We refuse to run at all when the workspace holds the PR head.
 */
import { z } from "zod";
import { BadInputError } from "../util/errors.js";
import { runCommand } from "../util/run-command.js";
import type { ActionContext, Leg, PullRequestRef } from "./context.js";
import { pullRequestOf } from "./context.js";
import { describeGitHubError, FORK_DOCS } from "./github-errors.js";
import type { GitHubClient } from "./sticky-comment.js";

const sha40 = z.string().regex(/^[0-9a-f]{40}$/);
const repoName = z.string().regex(/^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/);

export const prFileSchema = z.object({
  schemaVersion: z.literal(1),
  event: z.string().max(64),
  leg: z.object({ id: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/), label: z.string().max(200) }),
  pullRequest: z
    .object({
      number: z.number().int().positive().max(1_000_000_000),
      headSha: sha40,
      headRepo: repoName.optional(),
      baseRepo: repoName,
    })
    .nullable(),
});
export type PrFile = z.infer<typeof prFileSchema>;

export function makePrFile(ctx: ActionContext, leg: Leg): PrFile {
  const pr = pullRequestOf(ctx);
  return {
    schemaVersion: 1,
    event: ctx.eventName,
    leg: { id: leg.id, label: leg.label.slice(0, 200) },
    pullRequest: pr ? { number: pr.number, headSha: pr.headSha, headRepo: pr.headRepo, baseRepo: pr.baseRepo } : null,
  };
}

/** Parses pr.json from an artifact of another run. Throws BadInputError naming the artifact. */
export function parsePrFile(raw: Buffer, source: string): PrFile {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new BadInputError("pr.json is not JSON", { subject: source });
  }
  const parsed = prFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new BadInputError(
      `pr.json is not valid (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message})`,
      {
        subject: source,
        hint: "the `mode: run` and `mode: report` steps should use the same tokengate version",
      },
    );
  }
  return parsed.data;
}

/** `git rev-parse HEAD` in `dir`; undefined when it is not a git checkout or git is missing. */
export async function gitHead(dir: string): Promise<string | undefined> {
  const lines: string[] = [];
  try {
    const r = await runCommand("git", ["rev-parse", "HEAD"], { cwd: dir, onLine: (l) => lines.push(l) });
    const head = lines[0]?.trim();
    return r.code === 0 && head && /^[0-9a-f]{40}$/.test(head) ? head : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuses a `pull_request_target` run whose checkout is the PR's code (its head, or GitHub's merge commit of it): that
 * job holds a write token and secrets while running code from the PR. Other events pass.
 */
export async function assertNotPwnRequest(ctx: ActionContext, dirs: string[], head = gitHead): Promise<void> {
  if (ctx.eventName !== "pull_request_target") return;
  const pr = pullRequestOf(ctx);
  if (!pr) return;
  const merge = (ctx.payload.pull_request as { merge_commit_sha?: unknown } | undefined)?.merge_commit_sha;
  const untrusted = new Set([pr.headSha, typeof merge === "string" ? merge : ""].filter((s) => s !== ""));
  const heads = [ctx.sha, ...(await Promise.all(dirs.map((d) => head(d))))];
  const hit = heads.find((h) => h !== undefined && untrusted.has(h));
  if (hit) {
    throw new BadInputError(
      `refusing to run: this is a pull_request_target run and the checkout is the pull request's own code (${hit.slice(0, 12)}), ` +
        "which would run it with a write token",
      {
        subject: "event pull_request_target",
        hint: `measure on \`pull_request\` with \`mode: run\` and comment from a \`workflow_run\` workflow with \`mode: report\` (${FORK_DOCS})`,
      },
    );
  }
}

const workflowRunSchema = z.object({
  id: z.number().int().positive(),
  head_sha: sha40,
  event: z.string(),
  html_url: z.string().url(),
  head_repository: z.object({ full_name: z.string() }).nullable().optional(),
  pull_requests: z
    .array(z.object({ number: z.number().int().positive(), head: z.object({ sha: z.string() }) }))
    .default([]),
});
export type WorkflowRunEvent = z.infer<typeof workflowRunSchema>;

/** The `workflow_run` of the event payload (trusted: the runner wrote it). */
export function workflowRunOf(ctx: ActionContext): WorkflowRunEvent {
  if (ctx.eventName !== "workflow_run") {
    throw new BadInputError(
      `mode: report publishes the artifacts of another run and needs a workflow_run event, not ${ctx.eventName || "(none)"}`,
      {
        subject: "input mode",
        hint: `trigger it with \`on: { workflow_run: { workflows: [benchmarks], types: [completed] } }\`, or use \`mode: run\` (${FORK_DOCS})`,
      },
    );
  }
  const parsed = workflowRunSchema.safeParse(ctx.payload.workflow_run);
  if (!parsed.success) {
    throw new BadInputError("the workflow_run event payload lacks id, head_sha or html_url", {
      subject: "GITHUB_EVENT_PATH",
    });
  }
  return parsed.data;
}

export type PrResolution = { number: number } | { skip: string };

/**
 * Which PR a measured run belongs to. Same-repository PRs are listed in the (trusted) event. For forks that list is
 * empty and the artifact's pr.json claims a number: we accept it only if that PR's head (from the API) is the commit the
 * run measured (from the event) and comes from the same repository.
 */
export async function resolveReportPr(
  client: GitHubClient,
  ctx: ActionContext,
  wr: WorkflowRunEvent,
  prFile: PrFile | undefined,
): Promise<PrResolution> {
  if (wr.event !== "pull_request" && wr.event !== "pull_request_target") {
    return { skip: `the measured run was triggered by ${wr.event}, not a pull request` };
  }
  const listed = wr.pull_requests.find((p) => p.head.sha === wr.head_sha) ?? wr.pull_requests[0];
  if (listed) return { number: listed.number };
  const claimed = prFile?.pullRequest?.number;
  if (claimed === undefined) return { skip: "the artifact names no pull request (pr.json missing or without one)" };
  let pull: { head: { sha: string; repo: { full_name: string } | null } };
  try {
    ({ data: pull } = await client.rest.pulls.get({
      owner: ctx.repo.owner,
      repo: ctx.repo.repo,
      pull_number: claimed,
    }));
  } catch (e) {
    throw describeGitHubError(
      e,
      `read pull request #${claimed} (named by the artifact's pr.json)`,
      "pull-requests: read",
    );
  }
  if (pull.head.sha !== wr.head_sha) {
    return {
      skip: `PR #${claimed} is at ${pull.head.sha.slice(0, 12)} now, but the run measured ${wr.head_sha.slice(0, 12)} (a newer push will report)`,
    };
  }
  const headRepo = wr.head_repository?.full_name;
  if (headRepo !== undefined && pull.head.repo?.full_name !== headRepo) {
    return {
      skip: `PR #${claimed} comes from ${pull.head.repo?.full_name ?? "a deleted repository"}, but the run measured ${headRepo}`,
    };
  }
  return { number: claimed };
}

export type { PullRequestRef };
