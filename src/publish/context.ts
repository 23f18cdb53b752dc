/**
 * What the publish layer needs to know about the workflow run, read from the runner's environment and event payload
 * (GITHUB_EVENT_PATH). Read explicitly here instead of through `@actions/github`'s `context` singleton, which is built
 * once at import time: tests and the report mode construct their own.
 *
 * The event payload of the current run is trusted (the runner wrote it). Artifact contents are not (see fork.ts).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { slug } from "../report/escape.js";
import { BadInputError } from "../util/errors.js";

export interface RepoRef {
  owner: string;
  repo: string;
}

export interface PullRequestRef {
  number: number;
  headSha: string;
  /** `owner/name` of the head repository; undefined when the fork was deleted. */
  headRepo?: string;
  baseRepo: string;
}

export interface ActionContext {
  eventName: string;
  payload: Record<string, unknown>;
  repo: RepoRef;
  serverUrl: string;
  runId: number;
  runAttempt: number;
  job: string;
  /** GITHUB_SHA: the commit the workflow runs on (for pull_request: the test merge commit). */
  sha: string;
}

/** Reads the context from the environment. Throws BadInputError when this does not look like a GitHub Actions run. */
export function readActionContext(env: NodeJS.ProcessEnv = process.env): ActionContext {
  const repository = env.GITHUB_REPOSITORY ?? "";
  const [owner, repo] = repository.split("/");
  if (!owner || !repo) {
    throw new BadInputError("GITHUB_REPOSITORY is not set (expected `owner/repo`)", {
      subject: "environment",
      hint: "run the Action inside a GitHub Actions job; to try it locally set GITHUB_REPOSITORY=owner/repo and GITHUB_EVENT_PATH",
    });
  }
  let payload: Record<string, unknown> = {};
  const eventPath = env.GITHUB_EVENT_PATH;
  if (eventPath && existsSync(eventPath)) {
    try {
      payload = JSON.parse(readFileSync(eventPath, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new BadInputError(`the event payload is not JSON: ${(e as Error).message}`, {
        subject: eventPath,
        cause: e,
      });
    }
  }
  return {
    eventName: env.GITHUB_EVENT_NAME ?? "",
    payload,
    repo: { owner, repo },
    serverUrl: (env.GITHUB_SERVER_URL || "https://github.com").replace(/\/+$/, ""),
    runId: Number.parseInt(env.GITHUB_RUN_ID ?? "0", 10) || 0,
    runAttempt: Number.parseInt(env.GITHUB_RUN_ATTEMPT ?? "1", 10) || 1,
    job: env.GITHUB_JOB ?? "",
    sha: env.GITHUB_SHA ?? "",
  };
}

const prPayloadSchema = z.object({
  number: z.number().int().positive(),
  head: z.object({
    sha: z.string().regex(/^[0-9a-f]{40}$/),
    repo: z.object({ full_name: z.string() }).nullable().optional(),
  }),
  base: z.object({ repo: z.object({ full_name: z.string() }) }),
});

/** The pull request of a `pull_request` / `pull_request_target` event; undefined for other events. */
export function pullRequestOf(ctx: ActionContext): PullRequestRef | undefined {
  if (ctx.eventName !== "pull_request" && ctx.eventName !== "pull_request_target") return undefined;
  const parsed = prPayloadSchema.safeParse(ctx.payload.pull_request);
  if (!parsed.success) return undefined;
  const pr = parsed.data;
  return {
    number: pr.number,
    headSha: pr.head.sha,
    headRepo: pr.head.repo?.full_name,
    baseRepo: pr.base.repo.full_name,
  };
}

/** A PR whose head lives in another repository (a fork; also a deleted fork). Its GITHUB_TOKEN is read-only. */
export function isFromFork(pr: PullRequestRef): boolean {
  return pr.headRepo !== pr.baseRepo;
}

export function runUrl(ctx: ActionContext): string {
  return `${ctx.serverUrl}/${ctx.repo.owner}/${ctx.repo.repo}/actions/runs/${ctx.runId}`;
}

export interface Leg {
  /** `[A-Za-z0-9._-]`: goes into the comment marker and the artifact name. */
  id: string;
  /** For people: `bench (gpu: h200, model: 7b)`. Escape before rendering. */
  label: string;
}

/**
 * Identity of this matrix leg, so legs never overwrite each other's comment or artifact: the explicit `leg` input, else
 * the job id plus a short hash of the matrix values (`${{ toJSON(matrix) }}`, which is `null` outside a matrix).
 */
export function legOf(job: string, matrixJson: string | undefined, explicit: string | undefined): Leg {
  if (explicit) return { id: slug(explicit, 60), label: explicit };
  const jobName = job || "job";
  let matrix: unknown = null;
  try {
    matrix = matrixJson ? JSON.parse(matrixJson) : null;
  } catch {
    matrix = matrixJson; // not JSON: still part of the identity
  }
  if (matrix === null || matrix === "" || (typeof matrix === "object" && Object.keys(matrix).length === 0)) {
    return { id: slug(jobName, 60), label: jobName };
  }
  const canonical = JSON.stringify(sortKeys(matrix));
  const hash = createHash("sha256").update(canonical).digest("hex").slice(0, 8);
  const values =
    typeof matrix === "object" && matrix !== null && !Array.isArray(matrix)
      ? Object.entries(matrix as Record<string, unknown>)
          .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join(", ")
      : String(matrixJson);
  return { id: `${slug(jobName, 50)}-${hash}`, label: `${jobName} (${values})` };
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
