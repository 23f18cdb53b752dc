/**
 * Artifacts through @actions/artifact (v2+ backend: Twirp calls to ACTIONS_RESULTS_URL, content to a signed Azure Blob
 * URL). One artifact per matrix leg, named `<artifact-name>-<leg>`: names must be unique within a workflow run and an
 * artifact cannot be uploaded twice.
 *
 * `mode: report` downloads the artifacts of another run by id through the REST API (needs `actions: read`) and reads
 * only results.json and pr.json out of each zip, with size caps (zip-reader.ts): a fork decided what is in them.
 */
import { copyFile, mkdir, mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve, sep } from "node:path";
import type { ArtifactClient } from "@actions/artifact";
import { BadInputError, CouldNotRunError, type TokengateError } from "../util/errors.js";
import { isRequestError } from "./github-errors.js";
import { readZipEntries } from "./zip-reader.js";

export type ArtifactService = Pick<ArtifactClient, "uploadArtifact" | "listArtifacts" | "downloadArtifact">;

/** The file a `mode: run` step adds to its artifact so a `mode: report` run knows which PR and leg it belongs to. */
export const PR_FILE = "pr.json";
export const RESULTS_FILE = "results.json";

/** Caps for artifacts of other runs (report mode). */
export const REPORT_LIMITS = {
  /** Compressed size of one artifact, as the API lists it. */
  artifactBytes: 512 * 1024 * 1024,
  resultsBytes: 32 * 1024 * 1024,
  prFileBytes: 64 * 1024,
  /** Legs commented on per report run. */
  artifacts: 20,
} as const;

export function artifactNameFor(prefix: string, legId: string): string {
  return `${prefix}-${legId}`;
}

export interface UploadedArtifact {
  name: string;
  id?: number;
  size?: number;
}

/**
 * Uploads `files` (absolute paths; missing ones are skipped) as one artifact rooted at `rootDir`. Files outside
 * `rootDir` (a server log kept elsewhere) are copied into `rootDir/attachments/` first, since an artifact has one root.
 */
export async function uploadRunArtifact(
  client: ArtifactService,
  name: string,
  rootDir: string,
  files: string[],
  retentionDays: number,
): Promise<UploadedArtifact> {
  const root = resolve(rootDir);
  const inRoot: string[] = [];
  for (const f of new Set(files.map((x) => resolve(x)))) {
    if (f === root || f.startsWith(root + sep)) {
      inRoot.push(f);
    } else {
      const dest = join(root, "attachments", basename(f));
      await mkdir(join(root, "attachments"), { recursive: true });
      await copyFile(f, dest).then(
        () => inRoot.push(dest),
        () => undefined, // a file the pipeline listed but did not write (e.g. no server log): nothing to attach
      );
    }
  }
  try {
    const res = await client.uploadArtifact(name, inRoot, root, {
      // Results compress well; logs and profiles too. 0 keeps the repository's default retention.
      ...(retentionDays > 0 ? { retentionDays } : {}),
    });
    return { name, id: res.id, size: res.size };
  } catch (e) {
    throw describeArtifactError(e, `upload the artifact ${name}`);
  }
}

/** Turns an @actions/artifact failure into an error that says what to change. */
export function describeArtifactError(e: unknown, what: string): TokengateError {
  const err = e instanceof Error ? e : new Error(String(e));
  const msg = err.message;
  if (err.name === "GHESNotSupportedError") {
    return new CouldNotRunError(`could not ${what}: ${msg}`, {
      subject: "artifacts",
      hint: "@actions/artifact v2+ does not support GitHub Enterprise Server; the results are still on the runner (output `results-path`): upload them with a step of your own",
      cause: e,
    });
  }
  if (/ACTIONS_RUNTIME_TOKEN|ACTIONS_RESULTS_URL/.test(msg)) {
    return new CouldNotRunError(`could not ${what}: ${msg}`, {
      subject: "artifacts",
      hint: "the runner sets ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL for JavaScript actions; they are missing when the Action runs outside a GitHub Actions job (the results are still on disk: output `results-path`)",
      cause: e,
    });
  }
  if (/\(409\)|already exists/i.test(msg)) {
    return new BadInputError(`could not ${what}: an artifact with this name already exists in this workflow run`, {
      subject: "input artifact-name",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to users
      hint: "give each tokengate step in a job its own `leg:` (e.g. `leg: ${{ matrix.model }}-long-prompts`) or `artifact-name:`; re-runs of a job need a new run attempt",
      cause: e,
    });
  }
  if (err.name === "UsageError") {
    return new CouldNotRunError(`could not ${what}: ${msg}`, {
      subject: "artifacts",
      hint: "free artifact storage (delete old artifacts) or lower `artifact-retention-days`",
      cause: e,
    });
  }
  // Listing and downloading another run's artifacts go through the REST API (Octokit errors carry the status).
  const status = isRequestError(e) ? e.status : /\((401|403|404)\)/.exec(msg)?.[1];
  if (status === 401 || status === 403 || status === "401" || status === "403") {
    return new BadInputError(`could not ${what}: ${msg}`, {
      subject: "permissions",
      hint: "reading another run's artifacts needs `permissions: { actions: read }` on the job (and `github-token` left at its default)",
      cause: e,
    });
  }
  if (status === 404 || status === "404") {
    return new CouldNotRunError(`could not ${what}: ${msg}`, {
      subject: "artifacts",
      hint: "the run or its artifact no longer exists (artifacts expire after their retention period)",
      cause: e,
    });
  }
  return new CouldNotRunError(`could not ${what}: ${msg}`, { subject: "artifacts", cause: e });
}

export interface OtherRun {
  token: string;
  owner: string;
  repo: string;
  runId: number;
}

export interface ListedArtifact {
  id: number;
  name: string;
  size: number;
}

/** Artifacts of another run named `<prefix>-*` (newest per name), oldest name first. */
export async function listLegArtifacts(
  client: ArtifactService,
  run: OtherRun,
  prefix: string,
): Promise<ListedArtifact[]> {
  let listed: Awaited<ReturnType<ArtifactService["listArtifacts"]>>;
  try {
    listed = await client.listArtifacts({
      latest: true,
      findBy: { token: run.token, repositoryOwner: run.owner, repositoryName: run.repo, workflowRunId: run.runId },
    });
  } catch (e) {
    throw describeArtifactError(e, `list the artifacts of run ${run.runId}`);
  }
  return listed.artifacts
    .filter((a) => a.name.startsWith(`${prefix}-`))
    .map((a) => ({ id: a.id, name: a.name, size: a.size }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Downloads one artifact of another run (as a zip, not extracted) and returns the raw bytes of results.json and
 * pr.json, capped. The caller validates them.
 */
export async function fetchLegFiles(
  client: ArtifactService,
  run: OtherRun,
  artifact: ListedArtifact,
): Promise<{ results?: Buffer; pr?: Buffer }> {
  if (artifact.size > REPORT_LIMITS.artifactBytes) {
    throw new BadInputError(
      `is ${artifact.size} bytes, over the ${REPORT_LIMITS.artifactBytes}-byte limit for artifacts of other runs`,
      {
        subject: `artifact ${artifact.name}`,
        hint: "keep large profiles out of the tokengate artifact",
      },
    );
  }
  const dir = await mkdtemp(join(tmpdir(), "tokengate-report-"));
  try {
    await client.downloadArtifact(artifact.id, {
      path: dir,
      // Keep the zip as it is: we read two entries with limits instead of extracting a stranger's archive.
      skipDecompress: true,
      findBy: { token: run.token, repositoryOwner: run.owner, repositoryName: run.repo, workflowRunId: run.runId },
    });
  } catch (e) {
    throw describeArtifactError(e, `download the artifact ${artifact.name}`);
  }
  const files = await readdir(dir);
  const zip = files.length === 1 && files[0] ? join(dir, files[0]) : undefined;
  if (!zip)
    throw new CouldNotRunError(`downloading gave ${files.length} files, expected one zip`, {
      subject: `artifact ${artifact.name}`,
    });
  let entries: Map<string, Buffer>;
  try {
    entries = await readZipEntries(zip, [RESULTS_FILE, PR_FILE], { maxEntryBytes: REPORT_LIMITS.resultsBytes });
  } catch (e) {
    // Name the artifact, not the temporary file it was downloaded to.
    if (e instanceof BadInputError)
      throw new BadInputError(e.message, { subject: `artifact ${artifact.name}`, hint: e.hint, cause: e });
    throw e;
  }
  const pr = entries.get(PR_FILE);
  if (pr && pr.length > REPORT_LIMITS.prFileBytes) {
    throw new BadInputError(`${PR_FILE} is ${pr.length} bytes, over ${REPORT_LIMITS.prFileBytes}`, {
      subject: `artifact ${artifact.name}`,
    });
  }
  return { results: entries.get(RESULTS_FILE), pr };
}

/** Relative path for messages. */
export function rel(root: string, p: string): string {
  const r = relative(root, p);
  return r.startsWith("..") ? p : r;
}
