/**
 * fakeGitHub: a FAKE of the parts of GitHub the Action talks to, on 127.0.0.1 port 0. GitHub itself cannot run here
 * (no network), so this is the one place tests use a stand-in; it is kept honest three ways:
 * - every REST request is checked against GitHub's OpenAPI description (@octokit/openapi) and every JSON response the
 *   fake sends is validated against the documented response schema and built from GitHub's documented examples;
 *   violations are recorded and tests assert there are none;
 * - the artifact service (Twirp, what @actions/artifact v2+ calls at ACTIONS_RESULTS_URL) decodes requests with
 *   @actions/artifact's own generated protobuf message types, strictly (unknown fields are errors);
 * - error answers copy GitHub's: 403 "Resource not accessible by integration" with `x-accepted-github-permissions`,
 *   404 "Not Found", 401 "Bad credentials", 422 for comment bodies over 65,536 characters, Twirp 409 `already_exists`.
 *
 * Implemented: issue comments (list with Link-header pagination, create, update), GET a pull request, workflow-run
 * artifacts (list, download redirect), the Twirp CreateArtifact / FinalizeArtifact calls, and a blob store that
 * accepts Azure's Put Block / Put Block List (what BlockBlobClient.uploadStream sends) and serves the blob back.
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  CreateArtifactRequest,
  CreateArtifactResponse,
  FinalizeArtifactRequest,
  FinalizeArtifactResponse,
} from "../../node_modules/@actions/artifact/lib/generated/index.js";
import { GitHubOpenApi } from "./github-openapi.js";

export interface TokenGrant {
  /** `pull-requests` permission (comments need write). */
  pullRequests: "write" | "read" | "none";
  /** `actions` permission (another run's artifacts need read). */
  actions: "read" | "none";
}

export interface FakePull {
  headSha: string;
  headRepo: string;
}

export interface FakeGitHubOptions {
  owner: string;
  repo: string;
  /** Valid tokens and what they may do. Any other token gets 401 "Bad credentials". */
  tokens: Record<string, TokenGrant>;
  /** Pull requests that exist (their issue comments too). Others answer 404. */
  pulls: Record<number, FakePull>;
  /** The workflow run that uploads through the Twirp service (artifacts are listed under it). */
  runId?: number;
  /** Fault injection: the Twirp CreateArtifact call answers this instead of working. */
  createArtifactFault?: { status: number; code: string; msg: string };
}

export interface FakeComment {
  id: number;
  issue: number;
  body: string;
  login: string;
  type: "User" | "Bot";
  createdAt: string;
  updatedAt: string;
}

export interface FakeArtifact {
  id: number;
  name: string;
  runId: number;
  blobKey: string;
  size: number;
  digest?: string;
  finalized: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  /** `GET /repos/{owner}/{repo}/issues/{issue_number}/comments` for REST calls; `twirp:CreateArtifact`; `blob:PUT`. */
  operation: string;
  status: number;
  body?: unknown;
}

export interface FakeGitHub {
  /** GITHUB_API_URL */
  apiUrl: string;
  /** ACTIONS_RESULTS_URL */
  resultsUrl: string;
  /** ACTIONS_RUNTIME_TOKEN (a JWT with the Actions.Results scope @actions/artifact reads the backend ids from) */
  runtimeToken: string;
  runId: number;
  comments: FakeComment[];
  artifacts: FakeArtifact[];
  blobs: Map<string, Buffer>;
  requests: RecordedRequest[];
  /** Requests GitHub would refuse and responses GitHub would not send. Tests assert this stays empty. */
  violations: string[];
  options: FakeGitHubOptions;
  addComment(issue: number, body: string, login?: string, type?: "User" | "Bot"): FakeComment;
  close(): Promise<void>;
}

const BOT_LOGIN = "github-actions[bot]";
const COMMENT_MAX = 65_536;
const RUN_BACKEND_ID = "ce7f54c7-61c7-4aae-887f-30da475f5f1a";
const JOB_BACKEND_ID = "ca395085-040a-526b-2ce8-bdc85f692774";

function base64url(s: string): string {
  return Buffer.from(s).toString("base64url");
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

let openApi: GitHubOpenApi | undefined;

export async function startFakeGitHub(options: FakeGitHubOptions): Promise<FakeGitHub> {
  openApi ??= new GitHubOpenApi();
  const api = openApi;
  const runId = options.runId ?? 4242;
  const comments: FakeComment[] = [];
  const artifacts: FakeArtifact[] = [];
  const blobs = new Map<string, Buffer>();
  const stagedBlocks = new Map<string, Map<string, Buffer>>();
  const requests: RecordedRequest[] = [];
  const violations: string[] = [];
  let nextCommentId = 1001;
  let nextArtifactId = 501;
  let base = "";
  const repoPath = `/repos/${options.owner}/${options.repo}`;
  const runtimeToken = [
    base64url(JSON.stringify({ alg: "HS256", typ: "JWT" })),
    base64url(JSON.stringify({ scp: `Actions.ExampleScope Actions.Results:${RUN_BACKEND_ID}:${JOB_BACKEND_ID}` })),
    "fake-signature",
  ].join(".");

  const commentJson = (c: FakeComment) => {
    const v = api.example("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", 201);
    const user = v.user as Record<string, unknown>;
    user.login = c.login;
    user.type = c.type;
    // Bots' profile URLs are /apps/<slug> (a `[bot]` login is not a valid URI path).
    user.html_url =
      c.type === "Bot" ? `https://github.com/apps/${c.login.replace(/\[bot\]$/, "")}` : `https://github.com/${c.login}`;
    Object.assign(v, {
      id: c.id,
      node_id: Buffer.from(`IssueComment${c.id}`).toString("base64"),
      url: `${base}${repoPath}/issues/comments/${c.id}`,
      html_url: `https://github.com/${options.owner}/${options.repo}/pull/${c.issue}#issuecomment-${c.id}`,
      issue_url: `${base}${repoPath}/issues/${c.issue}`,
      body: c.body,
      created_at: c.createdAt,
      updated_at: c.updatedAt,
      author_association: c.type === "Bot" ? "NONE" : "CONTRIBUTOR",
    });
    return v;
  };

  const fake: FakeGitHub = {
    apiUrl: "",
    resultsUrl: "",
    runtimeToken,
    runId,
    comments,
    artifacts,
    blobs,
    requests,
    violations,
    options,
    addComment(issue, body, login = "octocat", type = "User") {
      const now = new Date(Date.UTC(2026, 10, 1, 12, 0, comments.length)).toISOString().replace(".000", "");
      const c: FakeComment = { id: nextCommentId++, issue, body, login, type, createdAt: now, updatedAt: now };
      comments.push(c);
      return c;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const send = (
    res: ServerResponse,
    rec: RecordedRequest,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    rec.status = status;
    const text =
      body === undefined ? "" : typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    res.writeHead(status, {
      ...(body !== undefined && !Buffer.isBuffer(body) && typeof body !== "string"
        ? { "content-type": "application/json; charset=utf-8" }
        : {}),
      ...headers,
    });
    res.end(text);
  };

  /** GitHub's error bodies: `{message, documentation_url, status}`. */
  const ghError = (
    res: ServerResponse,
    rec: RecordedRequest,
    status: number,
    message: string,
    docs: string,
    headers: Record<string, string> = {},
  ) =>
    send(
      res,
      rec,
      status,
      { message, documentation_url: `https://docs.github.com/rest/${docs}`, status: String(status) },
      headers,
    );

  const rest = async (req: IncomingMessage, res: ServerResponse, url: URL, rec: RecordedRequest, raw: Buffer) => {
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        violations.push(`${req.method} ${url.pathname}: body is not JSON`);
        return ghError(res, rec, 400, "Problems parsing JSON", "overview/resources-in-the-rest-api");
      }
    }
    rec.body = body;
    const check = api.checkRequest(req.method ?? "GET", url, body);
    rec.operation = check.operation ?? `unknown ${req.method} ${url.pathname}`;
    if (check.violations.length > 0) {
      violations.push(...check.violations.map((v) => `${rec.operation}: ${v}`));
      return ghError(
        res,
        rec,
        check.operation ? 422 : 404,
        check.operation ? "Validation Failed" : "Not Found",
        "overview/resources-in-the-rest-api",
      );
    }
    const reply = (status: number, json?: unknown, headers: Record<string, string> = {}) => {
      violations.push(
        ...api.checkResponse(req.method ?? "GET", url.pathname, status, json).map((v) => `fake ${rec.operation}: ${v}`),
      );
      send(res, rec, status, json, headers);
    };

    // Authentication: octokit sends `authorization: token <t>`.
    const auth = req.headers.authorization ?? "";
    const token = /^(?:token|bearer) (.+)$/i.exec(auth)?.[1];
    if (!token) return ghError(res, rec, 401, "Requires authentication", "overview/authenticating-to-the-rest-api");
    const grant = options.tokens[token];
    if (!grant) return ghError(res, rec, 401, "Bad credentials", "overview/authenticating-to-the-rest-api");

    const p = url.pathname.split("/");
    const forbidden = (docs: string, accepted: string) =>
      ghError(res, rec, 403, "Resource not accessible by integration", docs, {
        "x-accepted-github-permissions": accepted,
      });

    switch (check.operationId) {
      case "issues/list-comments": {
        const issue = Number(p[5]);
        if (!options.pulls[issue]) return ghError(res, rec, 404, "Not Found", "issues/comments#list-issue-comments");
        if (grant.pullRequests === "none")
          return forbidden("issues/comments#list-issue-comments", "issues=read; pull_requests=read");
        const perPage = Math.min(100, Number(url.searchParams.get("per_page") ?? 30));
        const page = Number(url.searchParams.get("page") ?? 1);
        const all = comments.filter((c) => c.issue === issue);
        const last = Math.max(1, Math.ceil(all.length / perPage));
        const link = (n: number, rel: string) => `<${base}${url.pathname}?per_page=${perPage}&page=${n}>; rel="${rel}"`;
        const links: string[] = [];
        if (page > 1) links.push(link(page - 1, "prev"));
        if (page < last) links.push(link(page + 1, "next"), link(last, "last"));
        if (page > 1) links.push(link(1, "first"));
        return reply(
          200,
          all.slice((page - 1) * perPage, page * perPage).map(commentJson),
          links.length ? { link: links.join(", ") } : {},
        );
      }
      case "issues/create-comment": {
        const issue = Number(p[5]);
        if (!options.pulls[issue])
          return ghError(res, rec, 404, "Not Found", "issues/comments#create-an-issue-comment");
        if (grant.pullRequests !== "write")
          return forbidden("issues/comments#create-an-issue-comment", "issues=write; pull_requests=write");
        const text = (body as { body: string }).body;
        if (text.length > COMMENT_MAX) return bodyTooLong(res, rec);
        return reply(201, commentJson(fake.addComment(issue, text, BOT_LOGIN, "Bot")));
      }
      case "issues/update-comment": {
        const c = comments.find((x) => x.id === Number(p[6]));
        if (!c) return ghError(res, rec, 404, "Not Found", "issues/comments#update-an-issue-comment");
        if (grant.pullRequests !== "write")
          return forbidden("issues/comments#update-an-issue-comment", "issues=write; pull_requests=write");
        const text = (body as { body: string }).body;
        if (text.length > COMMENT_MAX) return bodyTooLong(res, rec);
        c.body = text;
        c.updatedAt = new Date(Date.parse(c.updatedAt) + 60_000).toISOString().replace(".000", "");
        return reply(200, commentJson(c));
      }
      case "pulls/get": {
        const n = Number(p[5]);
        const pull = options.pulls[n];
        if (!pull) return ghError(res, rec, 404, "Not Found", "pulls/pulls#get-a-pull-request");
        if (grant.pullRequests === "none") return forbidden("pulls/pulls#get-a-pull-request", "pull_requests=read");
        const v = api.example("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", 200);
        v.number = n;
        const head = v.head as { sha: string; repo: { full_name: string } };
        head.sha = pull.headSha;
        head.repo.full_name = pull.headRepo;
        (v.base as { repo: { full_name: string } }).repo.full_name = `${options.owner}/${options.repo}`;
        // GitHub's own example lists a team without the `type` its schema requires; a PR with no team reviewers is
        // just as real and keeps the response valid against the schema.
        v.requested_teams = [];
        return reply(200, v);
      }
      case "actions/list-workflow-run-artifacts": {
        if (grant.actions !== "read") return forbidden("actions/artifacts#list-workflow-run-artifacts", "actions=read");
        const wanted = Number(p[6]);
        const name = url.searchParams.get("name");
        const list = artifacts.filter((a) => a.finalized && a.runId === wanted && (name === null || a.name === name));
        const perPage = Math.min(100, Number(url.searchParams.get("per_page") ?? 30));
        const page = Number(url.searchParams.get("page") ?? 1);
        const template = api.example("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts", 200);
        const proto = (template.artifacts as Record<string, unknown>[])[0]!;
        return reply(200, {
          total_count: list.length,
          artifacts: list.slice((page - 1) * perPage, page * perPage).map((a) => ({
            ...structuredClone(proto),
            id: a.id,
            node_id: Buffer.from(`Artifact${a.id}`).toString("base64"),
            name: a.name,
            size_in_bytes: a.size,
            url: `${base}${repoPath}/actions/artifacts/${a.id}`,
            archive_download_url: `${base}${repoPath}/actions/artifacts/${a.id}/zip`,
            digest: a.digest ?? null,
            workflow_run: { ...(proto.workflow_run as object), id: a.runId },
          })),
        });
      }
      case "actions/download-artifact": {
        if (grant.actions !== "read") return forbidden("actions/artifacts#download-an-artifact", "actions=read");
        const a = artifacts.find((x) => x.id === Number(p[6]) && x.finalized);
        if (!a) return ghError(res, rec, 404, "Not Found", "actions/artifacts#download-an-artifact");
        return reply(302, undefined, {
          location: `${base}/blob/fakeaccount/actions-results/${a.blobKey}?sig=fake-download-sig&se=2099-01-01`,
        });
      }
      default:
        violations.push(`fake does not implement ${rec.operation}`);
        return ghError(res, rec, 501, "fake: not implemented", "overview");
    }
  };

  const bodyTooLong = (res: ServerResponse, rec: RecordedRequest) =>
    send(res, rec, 422, {
      message: "Validation Failed",
      errors: [
        {
          resource: "IssueComment",
          code: "custom",
          field: "body",
          message: "body is too long (maximum is 65536 characters)",
        },
      ],
      documentation_url: "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
      status: "422",
    });

  const twirp = async (
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    rec: RecordedRequest,
    raw: Buffer,
  ) => {
    rec.operation = `twirp:${method}`;
    const twirpError = (status: number, code: string, msg: string) => send(res, rec, status, { code, msg });
    if (req.headers.authorization !== `Bearer ${runtimeToken}`)
      return twirpError(401, "unauthenticated", "invalid token");
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch {
      return twirpError(400, "malformed", "body is not JSON");
    }
    rec.body = json;
    if (method === "CreateArtifact") {
      let msg: ReturnType<typeof CreateArtifactRequest.fromJson>;
      try {
        msg = CreateArtifactRequest.fromJson(json as never); // strict: unknown fields throw
      } catch (e) {
        violations.push(`twirp CreateArtifact: ${(e as Error).message}`);
        return twirpError(400, "malformed", (e as Error).message);
      }
      if (msg.workflowRunBackendId !== RUN_BACKEND_ID || msg.workflowJobRunBackendId !== JOB_BACKEND_ID) {
        violations.push("twirp CreateArtifact: backend ids do not match the runtime token");
      }
      if (options.createArtifactFault) {
        const f = options.createArtifactFault;
        return twirpError(f.status, f.code, f.msg);
      }
      if (artifacts.some((a) => a.runId === runId && a.name === msg.name)) {
        return twirpError(409, "already_exists", "an artifact with this name already exists on the workflow run");
      }
      const blobKey = `${randomUUID()}/${encodeURIComponent(msg.name)}.zip`;
      artifacts.push({ id: nextArtifactId++, name: msg.name, runId, blobKey, size: 0, finalized: false });
      return send(
        res,
        rec,
        200,
        CreateArtifactResponse.toJson(
          {
            ok: true,
            signedUploadUrl: `${base}/blob/fakeaccount/actions-results/${blobKey}?sig=fake-upload-sig&se=2099-01-01`,
          },
          { useProtoFieldName: true },
        ),
      );
    }
    if (method === "FinalizeArtifact") {
      let msg: ReturnType<typeof FinalizeArtifactRequest.fromJson>;
      try {
        msg = FinalizeArtifactRequest.fromJson(json as never);
      } catch (e) {
        violations.push(`twirp FinalizeArtifact: ${(e as Error).message}`);
        return twirpError(400, "malformed", (e as Error).message);
      }
      const a = artifacts.find((x) => x.runId === runId && x.name === msg.name && !x.finalized);
      if (!a) return twirpError(404, "not_found", "artifact not found");
      const blob = blobs.get(a.blobKey);
      if (!blob) return twirpError(400, "failed_precondition", "no blob was uploaded");
      if (String(blob.length) !== msg.size)
        violations.push(`twirp FinalizeArtifact: size ${msg.size} but ${blob.length} bytes were uploaded`);
      const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
      if (msg.hash?.value !== undefined && msg.hash.value !== digest)
        violations.push("twirp FinalizeArtifact: hash does not match the blob");
      a.size = blob.length;
      a.digest = digest;
      a.finalized = true;
      return send(
        res,
        rec,
        200,
        FinalizeArtifactResponse.toJson({ ok: true, artifactId: String(a.id) }, { useProtoFieldName: true }),
      );
    }
    violations.push(`fake does not implement twirp ${method}`);
    return twirpError(501, "unimplemented", method);
  };

  const blob = async (req: IncomingMessage, res: ServerResponse, url: URL, rec: RecordedRequest, raw: Buffer) => {
    rec.operation = `blob:${req.method}`;
    const key = url.pathname.replace(/^\/blob\/fakeaccount\/actions-results\//, "");
    const azHeaders = {
      "x-ms-request-id": randomUUID(),
      "x-ms-version": "2025-11-05",
      etag: `"0x${createHash("md5").update(key).digest("hex").slice(0, 16).toUpperCase()}"`,
      "last-modified": new Date().toUTCString(),
    };
    if (!url.searchParams.get("sig"))
      return send(res, rec, 403, "<Error><Code>AuthenticationFailed</Code></Error>", {
        "content-type": "application/xml",
      });
    if (req.method === "PUT") {
      const comp = url.searchParams.get("comp");
      if (comp === "block") {
        const id = url.searchParams.get("blockid") ?? "";
        if (!stagedBlocks.has(key)) stagedBlocks.set(key, new Map());
        stagedBlocks.get(key)!.set(id, raw);
        return send(res, rec, 201, undefined, azHeaders);
      }
      if (comp === "blocklist") {
        const staged = stagedBlocks.get(key) ?? new Map<string, Buffer>();
        const ids = [
          ...raw
            .toString("utf8")
            .matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)<\/(?:Latest|Uncommitted|Committed)>/g),
        ].map((m) => m[1]!);
        const parts = ids.map((id) => staged.get(id));
        if (parts.some((x) => x === undefined))
          return send(res, rec, 400, "<Error><Code>InvalidBlockList</Code></Error>", {
            "content-type": "application/xml",
          });
        blobs.set(key, Buffer.concat(parts as Buffer[]));
        stagedBlocks.delete(key);
        return send(res, rec, 201, undefined, azHeaders);
      }
      if (req.headers["x-ms-blob-type"] === "BlockBlob") {
        blobs.set(key, raw);
        return send(res, rec, 201, undefined, azHeaders);
      }
      return send(res, rec, 400, "<Error><Code>InvalidQueryParameterValue</Code></Error>", {
        "content-type": "application/xml",
      });
    }
    if (req.method === "GET") {
      const data = blobs.get(key);
      if (!data)
        return send(res, rec, 404, "<Error><Code>BlobNotFound</Code></Error>", { "content-type": "application/xml" });
      const fileName = decodeURIComponent(key.split("/").pop() ?? "artifact.zip");
      return send(res, rec, 200, data, {
        ...azHeaders,
        "content-type": "application/zip",
        "content-length": String(data.length),
        "content-disposition": `attachment; filename=${fileName}`,
      });
    }
    return send(res, rec, 405, "");
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", base);
    const rec: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.search,
      operation: "",
      status: 0,
    };
    requests.push(rec);
    readBody(req)
      .then((raw) => {
        const twirpMatch = /^\/twirp\/github\.actions\.results\.api\.v1\.ArtifactService\/(\w+)$/.exec(url.pathname);
        if (twirpMatch) return twirp(req, res, twirpMatch[1]!, rec, raw);
        if (url.pathname.startsWith("/blob/")) return blob(req, res, url, rec, raw);
        return rest(req, res, url, rec, raw);
      })
      .catch((e: unknown) => {
        violations.push(`fake crashed on ${req.method} ${url.pathname}: ${(e as Error).stack ?? String(e)}`);
        if (!res.headersSent) send(res, rec, 500, { message: "fake crashed" });
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  fake.apiUrl = base;
  fake.resultsUrl = `${base}/`;
  return fake;
}

/** The environment a runner gives a JavaScript action, pointed at the fake. */
export function runnerEnv(fake: FakeGitHub, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GITHUB_ACTIONS: "true",
    CI: "true",
    GITHUB_REPOSITORY: `${fake.options.owner}/${fake.options.repo}`,
    GITHUB_REPOSITORY_OWNER: fake.options.owner,
    GITHUB_API_URL: fake.apiUrl,
    // @actions/artifact refuses to work unless the server URL is github.com or *.ghe.com (GHES is unsupported).
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_GRAPHQL_URL: `${fake.apiUrl}/graphql`,
    GITHUB_RUN_ID: String(fake.runId),
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_RUN_NUMBER: "7",
    GITHUB_JOB: "bench",
    GITHUB_WORKFLOW: "benchmarks",
    GITHUB_ACTOR: "octocat",
    ACTIONS_RUNTIME_TOKEN: fake.runtimeToken,
    ACTIONS_RESULTS_URL: fake.resultsUrl,
    // No proxy may intercept loopback calls.
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
    ...extra,
  };
}
