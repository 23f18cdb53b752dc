/**
 * The Action's inputs and outputs: names (one place, like actions/cache's constants.ts), types, defaults, and the
 * parsing of `core.getInput` strings into one typed `ActionInputs`. action.yml must list the same names; a test checks.
 *
 * Note for local runs: `core.getInput("fail-on")` reads `INPUT_FAIL-ON` (only spaces become underscores; hyphens stay),
 * so set such variables with `env 'INPUT_FAIL-ON=warn' node dist/index.js`.
 */
import { isAbsolute, resolve } from "node:path";
import { BadInputError } from "../util/errors.js";

export const Input = {
  mode: "mode",
  suite: "suite",
  target: "target",
  serverBin: "server-bin",
  model: "model",
  url: "url",
  apiKeyEnv: "api-key-env",
  baseline: "baseline",
  githubToken: "github-token",
  commentMode: "comment-mode",
  failOn: "fail-on",
  artifactName: "artifact-name",
  artifactRetentionDays: "artifact-retention-days",
  workingDirectory: "working-directory",
  leg: "leg",
  matrix: "matrix",
  baseSuite: "base-suite",
  baseRef: "base-ref",
  baseServerBin: "base-server-bin",
  baseModel: "base-model",
  baseServerFlags: "base-server-flags",
  serverFlags: "server-flags",
  pairs: "pairs",
  runs: "runs",
  baselineName: "baseline-name",
} as const;
export type InputName = (typeof Input)[keyof typeof Input];

export const Output = {
  verdict: "verdict",
  resultsPath: "results-path",
  reportPath: "report-path",
  commentId: "comment-id",
  commentUrl: "comment-url",
} as const;
export type OutputName = (typeof Output)[keyof typeof Output];

/** Keys for `core.saveState` (read back by the post step as `STATE_<key>`). */
export const State = {
  /** Random id put into the environment of everything the main step starts; the post step stops processes carrying it. */
  ownerId: "tokengate-owner-id",
  /** JSON list of `{pid, start}` of the servers the main step started (see publish/cleanup.ts). */
  serverPids: "tokengate-server-pids",
} as const;

/** Environment variable that carries `State.ownerId` into every child process (children inherit process.env). */
export const OWNER_ENV = "TOKENGATE_ACTION_OWNER";

export const MODES = ["run", "report", "ab", "baseline"] as const;
export type Mode = (typeof MODES)[number];

export const COMMENT_MODES = ["always", "on-change", "on-alert", "off"] as const;
/**
 * - always: create the sticky comment or update it in place.
 * - on-change: update an existing comment; create one only when the verdict is not pass.
 * - on-alert: create or update only when the verdict is warn or fail (a later pass leaves the old comment as is).
 * - off: never comment.
 */
export type CommentMode = (typeof COMMENT_MODES)[number];

export const FAIL_ON = ["fail", "warn", "never"] as const;
/** Which verdict fails the step: `fail` (default), `warn` (warn or fail), `never` (only errors fail the step). */
export type FailOn = (typeof FAIL_ON)[number];

export const TARGETS = ["in-process", "llama-server", "external"] as const;
export type ActionTarget = (typeof TARGETS)[number];

export interface ActionInputs {
  /** `run` (default): run the suite here. `report`: on `workflow_run`, publish artifacts a `run` left behind. */
  mode: Mode;
  /** Absolute path of the suite file; undefined = the built-in default suite. */
  suiteFile?: string;
  /** Undefined = the pipeline's default (in-process with the embedded synthetic model when no model is given). */
  target?: ActionTarget;
  serverBin?: string;
  modelPath?: string;
  url?: string;
  /** Name of the environment variable that holds the API key of an external target (the key itself is never an input). */
  apiKeyEnv?: string;
  /** A baseline results file or a directory of them. */
  baselinePath?: string;
  /** Empty when the user passed none (then nothing that needs the API is attempted, and the step says so). */
  githubToken: string;
  commentMode: CommentMode;
  failOn: FailOn;
  /** Prefix of the artifact name; the leg is appended so matrix legs never collide. Default `tokengate`. */
  artifactName: string;
  /** 1..90, or 0 for the repository default. */
  artifactRetentionDays: number;
  /** Absolute; relative inputs resolve against it. Default: `$GITHUB_WORKSPACE`, else the current directory. */
  workingDirectory: string;
  /** Explicit name of this matrix leg (overrides the one derived from the job and matrix). */
  leg?: string;
  /** `${{ toJSON(matrix) }}` as action.yml passes it: part of the leg identity. */
  matrixJson?: string;
  /** mode ab: the base arm (what a --base-* flag of `tokengate ab` sets), and the head's server flags. */
  ab: {
    baseSuiteFile?: string;
    /** Ref whose copy of the suite the base arm runs when base-suite is empty (default origin/$GITHUB_BASE_REF). */
    baseRef?: string;
    baseServerBin?: string;
    baseModelPath?: string;
    baseServerFlags?: string;
    serverFlags?: string;
    /** Interleaved pairs (default: tokengate ab's). */
    pairs?: number;
  };
  /** mode baseline: separate runs to measure (default 3) and the baseline's name (default the suite's name). */
  baselineRuns: number;
  baselineName?: string;
}

export type GetInput = (name: string) => string;

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[], fallback: T): T {
  if (value === "") return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new BadInputError(`must be one of ${allowed.join(", ")}, got "${value}"`, {
    subject: `input ${name}`,
    hint: `for example \`${name}: ${fallback}\``,
  });
}

function optional(value: string): string | undefined {
  return value === "" ? undefined : value;
}

/**
 * Parses the Action's inputs. `getInput` is `core.getInput` in the Action (values arrive trimmed); tests pass a map.
 * Throws BadInputError naming the input and a valid example.
 */
export function readActionInputs(getInput: GetInput, env: NodeJS.ProcessEnv = process.env): ActionInputs {
  const get = (name: InputName) => getInput(name).trim();
  const workspace = env.GITHUB_WORKSPACE || process.cwd();
  const wd = get(Input.workingDirectory);
  const workingDirectory = wd === "" ? workspace : isAbsolute(wd) ? wd : resolve(workspace, wd);
  const pathInput = (name: InputName) => {
    const v = optional(get(name));
    return v === undefined ? undefined : resolve(workingDirectory, v);
  };

  const retentionRaw = get(Input.artifactRetentionDays);
  const retention = retentionRaw === "" ? 0 : Number(retentionRaw);
  if (!Number.isInteger(retention) || retention < 0 || retention > 90) {
    throw new BadInputError(
      `must be a whole number of days from 1 to 90 (0 = the repository's default), got "${retentionRaw}"`,
      {
        subject: `input ${Input.artifactRetentionDays}`,
        hint: `for example \`${Input.artifactRetentionDays}: 14\``,
      },
    );
  }

  const artifactName = get(Input.artifactName) || "tokengate";
  // @actions/artifact refuses these characters; say so before running a 20-minute suite.
  if (/["':<>|*?\\/\r\n]/.test(artifactName)) {
    throw new BadInputError(`contains a character artifacts cannot have (" ' : < > | * ? \\ / or a newline)`, {
      subject: `input ${Input.artifactName}`,
      hint: `for example \`${Input.artifactName}: tokengate-gpu\``,
    });
  }

  const apiKeyEnv = optional(get(Input.apiKeyEnv));
  if (apiKeyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(apiKeyEnv)) {
    throw new BadInputError(`must be the NAME of an environment variable, not the key itself`, {
      subject: `input ${Input.apiKeyEnv}`,
      hint: `set \`env: { MY_API_KEY: \${{ secrets.MY_API_KEY }} }\` on the step and \`${Input.apiKeyEnv}: MY_API_KEY\``,
    });
  }

  const count = (name: InputName, min: number, max: number, dflt: number | undefined, example: string) => {
    const raw = get(name);
    if (raw === "") return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new BadInputError(`must be a whole number from ${min} to ${max}, got "${raw}"`, {
        subject: `input ${name}`,
        hint: `for example \`${name}: ${example}\``,
      });
    }
    return n;
  };
  const binInput = (name: InputName) => (/[\\/]/.test(get(name)) ? pathInput(name) : optional(get(name)));
  const baseBranch = optional(env.GITHUB_BASE_REF ?? "");
  const pairs = count(Input.pairs, 2, 50, undefined, "3");
  const ab: ActionInputs["ab"] = {
    ...(pathInput(Input.baseSuite) ? { baseSuiteFile: pathInput(Input.baseSuite)! } : {}),
    ...(optional(get(Input.baseRef)) || baseBranch
      ? { baseRef: optional(get(Input.baseRef)) ?? `origin/${baseBranch}` }
      : {}),
    ...(binInput(Input.baseServerBin) ? { baseServerBin: binInput(Input.baseServerBin)! } : {}),
    ...(pathInput(Input.baseModel) ? { baseModelPath: pathInput(Input.baseModel)! } : {}),
    ...(optional(get(Input.baseServerFlags)) ? { baseServerFlags: get(Input.baseServerFlags) } : {}),
    ...(optional(get(Input.serverFlags)) ? { serverFlags: get(Input.serverFlags) } : {}),
    ...(pairs !== undefined ? { pairs } : {}),
  };

  return {
    ab,
    baselineRuns: count(Input.runs, 1, 20, 3, "3")!,
    ...(optional(get(Input.baselineName)) ? { baselineName: get(Input.baselineName) } : {}),
    mode: oneOf(Input.mode, get(Input.mode), MODES, "run"),
    suiteFile: pathInput(Input.suite),
    target: get(Input.target) === "" ? undefined : oneOf(Input.target, get(Input.target), TARGETS, "in-process"),
    // A bare name (`llama-server`) is looked up on PATH; anything with a slash is a path.
    serverBin: binInput(Input.serverBin),
    modelPath: pathInput(Input.model),
    url: optional(get(Input.url)),
    apiKeyEnv,
    baselinePath: pathInput(Input.baseline),
    githubToken: get(Input.githubToken),
    commentMode: oneOf(Input.commentMode, get(Input.commentMode), COMMENT_MODES, "always"),
    failOn: oneOf(Input.failOn, get(Input.failOn), FAIL_ON, "fail"),
    artifactName,
    artifactRetentionDays: retention,
    workingDirectory,
    leg: optional(get(Input.leg)),
    matrixJson: optional(get(Input.matrix)),
  };
}
