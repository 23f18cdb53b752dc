/**
 * The sticky PR comment: one per suite and matrix leg, found again by its hidden marker (the last line of the body, as
 * Bencher does) and edited in place, so a PR gets one comment per leg instead of one per push.
 *
 * Finding it pages through ALL of the PR's issue comments, 100 at a time, following the Link headers (one page is not
 * enough on a long PR; github-action-benchmark's unpaginated lookup makes duplicates there).
 */
import type { getOctokit } from "@actions/github";
import type { CommentMode } from "../config/action-inputs.js";
import type { VerdictLevel } from "../measure/results.js";
import { describeGitHubError } from "./github-errors.js";

export type GitHubClient = ReturnType<typeof getOctokit>;

export type CommentDecision = "create-or-update" | "update-only" | "skip";

/**
 * What `comment-mode` allows for this verdict, before looking at the PR:
 * always -> create or update; on-change -> update an existing comment, create only when not pass;
 * on-alert -> create or update only on warn/fail; off -> nothing.
 */
export function commentDecision(mode: CommentMode, verdict: VerdictLevel): CommentDecision {
  switch (mode) {
    case "always":
      return "create-or-update";
    case "on-change":
      return verdict === "pass" ? "update-only" : "create-or-update";
    case "on-alert":
      return verdict === "pass" ? "skip" : "create-or-update";
    case "off":
      return "skip";
  }
}

export interface StickyCommentTarget {
  owner: string;
  repo: string;
  issueNumber: number;
  marker: string;
}

export interface FoundComment {
  id: number;
  url: string;
  body: string;
}

/** The first comment on the PR whose body ends with `marker`, paging through every page of comments. */
export async function findStickyComment(
  client: GitHubClient,
  t: StickyCommentTarget,
): Promise<FoundComment | undefined> {
  try {
    const pages = client.paginate.iterator(client.rest.issues.listComments, {
      owner: t.owner,
      repo: t.repo,
      issue_number: t.issueNumber,
      per_page: 100,
    });
    for await (const page of pages) {
      const hit = page.data.find((c) => (c.body ?? "").trimEnd().endsWith(t.marker));
      if (hit) return { id: hit.id, url: hit.html_url, body: hit.body ?? "" };
    }
    return undefined;
  } catch (e) {
    throw describeGitHubError(e, `list the comments of #${t.issueNumber}`, "pull-requests: read");
  }
}

export interface StickyCommentResult {
  action: "created" | "updated" | "unchanged" | "skipped";
  /** Why nothing was posted (skipped only). */
  reason?: string;
  id?: number;
  url?: string;
}

/** Creates or updates the sticky comment as `mode` allows. Throws a TokengateError that says what to change. */
export async function upsertStickyComment(
  client: GitHubClient,
  t: StickyCommentTarget,
  body: string,
  mode: CommentMode,
  verdict: VerdictLevel,
): Promise<StickyCommentResult> {
  const decision = commentDecision(mode, verdict);
  if (decision === "skip") {
    return {
      action: "skipped",
      reason: mode === "off" ? "comment-mode is off" : `comment-mode ${mode} and the verdict is ${verdict}`,
    };
  }
  const existing = await findStickyComment(client, t);
  if (existing) {
    // Editing with the same text would still notify subscribers of an edit; skip it.
    if (existing.body === body) return { action: "unchanged", id: existing.id, url: existing.url };
    try {
      const { data } = await client.rest.issues.updateComment({
        owner: t.owner,
        repo: t.repo,
        comment_id: existing.id,
        body,
      });
      return { action: "updated", id: data.id, url: data.html_url };
    } catch (e) {
      throw describeGitHubError(e, `update comment ${existing.id} on #${t.issueNumber}`, "pull-requests: write");
    }
  }
  if (decision === "update-only") {
    return {
      action: "skipped",
      reason: `comment-mode on-change: the verdict is pass and there is no earlier comment to update`,
    };
  }
  try {
    const { data } = await client.rest.issues.createComment({
      owner: t.owner,
      repo: t.repo,
      issue_number: t.issueNumber,
      body,
    });
    return { action: "created", id: data.id, url: data.html_url };
  } catch (e) {
    throw describeGitHubError(e, `create the PR comment on #${t.issueNumber}`, "pull-requests: write");
  }
}
