/**
 * Turns a failed GitHub API call into an error that says what to change. The common causes, as GitHub reports them:
 * - 403 "Resource not accessible by integration": the token lacks a permission. GitHub names the one it wanted in the
 *   `x-accepted-github-permissions` header (e.g. `issues=write; pull_requests=write`). On a fork's pull_request the
 *   GITHUB_TOKEN is read-only whatever the `permissions:` block says.
 * - 401 "Bad credentials": the token is wrong or expired.
 * - 404 "Not Found": the PR does not exist, or the token cannot see the repository (private repos answer 404, not 403).
 * - 422: the request was invalid (e.g. "Body is too long (maximum is 65536 characters)").
 */
import { BadInputError, CouldNotRunError, type TokengateError } from "../util/errors.js";

/** The shape of @octokit/request-error's RequestError, checked structurally (it is a transitive dependency). */
interface RequestErrorLike {
  status: number;
  message: string;
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown };
}

export function isRequestError(e: unknown): e is RequestErrorLike {
  return typeof e === "object" && e !== null && typeof (e as { status?: unknown }).status === "number";
}

function githubMessage(e: RequestErrorLike): string {
  const data = e.response?.data;
  if (typeof data === "object" && data !== null && typeof (data as { message?: unknown }).message === "string") {
    return (data as { message: string }).message;
  }
  return e.message;
}

export const FORK_DOCS = "docs/action.md#fork-pull-requests";

/**
 * `what` is the action in words ("create the PR comment on #12"); `permission` the `permissions:` entry it needs
 * (`pull-requests: write`).
 */
export function describeGitHubError(e: unknown, what: string, permission: string): TokengateError {
  if (!isRequestError(e)) {
    return new CouldNotRunError(`could not ${what}: ${e instanceof Error ? e.message : String(e)}`, {
      subject: "GitHub API",
      cause: e,
    });
  }
  const msg = githubMessage(e);
  const accepted = e.response?.headers?.["x-accepted-github-permissions"];
  switch (e.status) {
    case 401:
      return new BadInputError(`could not ${what}: GitHub answered 401 "${msg}"`, {
        subject: "input github-token",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to users
        hint: "leave `github-token` at its default (`${{ github.token }}`) or pass a valid token from a secret",
        cause: e,
      });
    case 403:
      return new BadInputError(
        `could not ${what}: GitHub answered 403 "${msg}"${accepted ? ` (it wants: ${accepted})` : ""}`,
        {
          subject: "permissions",
          hint:
            `give the job the permission: \`permissions: { contents: read, ${permission} }\`. ` +
            `On pull requests from forks the token is read-only whatever the workflow says: use the fork-safe ` +
            `run/report pair (${FORK_DOCS}), or set \`comment-mode: off\``,
          cause: e,
        },
      );
    case 404:
      return new BadInputError(`could not ${what}: GitHub answered 404 "${msg}"`, {
        subject: "GitHub API",
        hint: "check that the pull request exists in this repository; a private repository also answers 404 when the token cannot read it (`permissions: { contents: read }`)",
        cause: e,
      });
    case 422:
      return new CouldNotRunError(`could not ${what}: GitHub refused the request (422 "${msg}")`, {
        subject: "GitHub API",
        hint: "this is a tokengate bug if the message is about the comment body; please report it with the job log",
        cause: e,
      });
    default:
      return new CouldNotRunError(`could not ${what}: GitHub answered ${e.status} "${msg}"`, {
        subject: "GitHub API",
        hint: e.status >= 500 ? "GitHub had a problem; re-run the job" : undefined,
        cause: e,
      });
  }
}
