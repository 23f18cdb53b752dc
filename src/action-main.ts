/**
 * The GitHub Action: inputs -> pipeline -> publish (outputs, annotations, artifact, sticky PR comment, job summary).
 * src/action.ts only calls `runAction()` and turns what it returns (or throws) into `core.setFailed`: this module never
 * fails the step itself.
 *
 * Publishing is best-effort per channel: a comment that cannot be posted (403, 404) or an artifact the service refuses
 * does not stop the others. Each problem is collected, shown in the job summary, and fails the step at the end with
 * what to change; the results on disk and the summary are always produced.
 *
 * `mode: report` (workflow_run, fork-safe) skips the pipeline: it publishes the artifacts of the run that measured.
 */
import { randomUUID } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { DefaultArtifactClient } from "@actions/artifact";
import * as core from "@actions/core";
import { getOctokit } from "@actions/github";
import { measureForMode } from "./action-measure.js";
import { type AbConfig, type AbHooks, runAb } from "./arms/ab.js";
import {
  type ActionInputs,
  type FailOn,
  Input,
  Output,
  OWNER_ENV,
  readActionInputs,
  State,
} from "./config/action-inputs.js";
import type { RunConfig } from "./config/run-config.js";
import type { VerdictLevel } from "./measure/results.js";
import type { PipelineHooks, PipelineOutcome } from "./pipeline.js";
import { runPipeline } from "./pipeline.js";
import { annotateRegressions, MAX_ANNOTATIONS } from "./publish/annotations.js";
import {
  type ArtifactService,
  artifactNameFor,
  fetchLegFiles,
  listLegArtifacts,
  type OtherRun,
  PR_FILE,
  REPORT_LIMITS,
  uploadRunArtifact,
} from "./publish/artifacts.js";
import { processStartTime, type RecordedProcess } from "./publish/cleanup.js";
import { type ActionContext, isFromFork, legOf, pullRequestOf, readActionContext, runUrl } from "./publish/context.js";
import {
  assertNotPwnRequest,
  makePrFile,
  type PrFile,
  parsePrFile,
  resolveReportPr,
  workflowRunOf,
} from "./publish/fork.js";
import { FORK_DOCS } from "./publish/github-errors.js";
import { commentMarker, type RenderInfo, renderComment, renderSummary, type SummarySection } from "./publish/render.js";
import { type GitHubClient, type StickyCommentResult, upsertStickyComment } from "./publish/sticky-comment.js";
import { type PublishView, toPublishView } from "./publish/view.js";
import { escapeMarkdown as esc, slug } from "./report/escape.js";
import { ensureNodeLlamaCpp } from "./target/node-llama-cpp-install.js";
import { BadInputError, CouldNotRunError, isTokengateError, type TokengateError } from "./util/errors.js";
import { registerSecret } from "./util/secrets.js";

/** Everything the Action touches outside itself, so tests can run it in-process with real servers on port 0. */
export interface ActionDeps {
  getInput: (name: string) => string;
  env: NodeJS.ProcessEnv;
  log: Pick<typeof core, "info" | "notice" | "warning" | "error" | "setOutput" | "saveState" | "setSecret">;
  /** Writes the job summary (core.summary in the Action). */
  writeSummary: (markdown: string) => Promise<void>;
  artifacts: ArtifactService;
  github: (token: string) => GitHubClient;
  runPipeline: (config: RunConfig, hooks?: PipelineHooks) => Promise<PipelineOutcome>;
  runAb: (config: AbConfig, hooks?: AbHooks) => Promise<PipelineOutcome>;
}

export function defaultDeps(): ActionDeps {
  return {
    getInput: (name) => core.getInput(name),
    env: process.env,
    log: core,
    writeSummary: async (md) => {
      await core.summary.addRaw(md, true).write();
    },
    artifacts: new DefaultArtifactClient(),
    github: (token) => getOctokit(token),
    runPipeline,
    runAb,
  };
}

export interface ActionResult {
  verdict?: VerdictLevel;
  /** Reasons to fail the step, each saying what to change. Empty: the step passes. */
  failures: string[];
}

/** Runs the Action. Throws a TokengateError (or anything) only when nothing could be published at all. */
export async function runAction(deps: ActionDeps = defaultDeps()): Promise<ActionResult> {
  const inputs = readActionInputs(deps.getInput, deps.env);
  if (inputs.githubToken) {
    registerSecret(inputs.githubToken);
    deps.log.setSecret(inputs.githubToken);
  }
  const ctx = readActionContext(deps.env);
  return inputs.mode === "report" ? reportMode(deps, inputs, ctx) : runMode(deps, inputs, ctx);
}

function problemText(e: unknown): string {
  if (isTokengateError(e)) return e.userMessage();
  return e instanceof Error ? e.message : String(e);
}

/** A problem as a summary note: our words, with GitHub's / the service's words escaped. */
function problemNote(e: unknown): string {
  return `⚠️ ${esc(problemText(e), { maxLength: 1500 })}`;
}

function gate(verdict: VerdictLevel, failOn: FailOn, reason: string): string | undefined {
  const fails = failOn === "never" ? false : failOn === "warn" ? verdict !== "pass" : verdict === "fail";
  if (!fails) return undefined;
  return `tokengate verdict: ${verdict} (fail-on: ${failOn}): ${reason}`;
}

function missingToken(): TokengateError {
  return new BadInputError("is empty, so the PR comment cannot be posted", {
    subject: `input ${Input.githubToken}`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, shown to users
    hint: "leave it at its default (`${{ github.token }}`) with `permissions: { pull-requests: write }`, or set `comment-mode: off`",
  });
}

async function runMode(deps: ActionDeps, inputs: ActionInputs, ctx: ActionContext): Promise<ActionResult> {
  const { log } = deps;
  // Mark everything started from here on (see publish/cleanup.ts): the post step stops what is still running.
  const ownerId = randomUUID();
  deps.env[OWNER_ENV] = ownerId;
  if (deps.env !== process.env) process.env[OWNER_ENV] = ownerId;
  log.saveState(State.ownerId, ownerId);

  await assertNotPwnRequest(ctx, [inputs.workingDirectory, deps.env.GITHUB_WORKSPACE ?? inputs.workingDirectory]);

  // The in-process target and synthetic models need node-llama-cpp next to dist/ (see node-llama-cpp-install.ts).
  if (inputs.target !== "external" && !(inputs.target === "llama-server" && inputs.modelPath)) {
    await ensureNodeLlamaCpp((line) => log.info(line));
  }
  const leg = legOf(ctx.job, inputs.matrixJson, inputs.leg);
  const started: RecordedProcess[] = [];
  const outDir = join(inputs.workingDirectory, "tokengate-results", leg.id);
  const measured = await measureForMode(deps, inputs, outDir, {
    log: (line) => log.info(line),
    // Record the server's pid (with its start time, so a reused pid is never hit) for the post step.
    onTargetStarted: (target) => {
      const pid = (target as { pid?: () => number | undefined }).pid?.();
      if (pid === undefined) return;
      void processStartTime(pid).then((start) => {
        if (start === undefined) return;
        started.push({ pid, start });
        log.saveState(State.serverPids, JSON.stringify(started));
      });
    },
  }).catch(async (e: unknown) => {
    // Nothing was measured, but the summary still says why (the step's error says it too).
    await deps
      .writeSummary(`### ❌ tokengate: could not run · ${esc(leg.label)}\n\n${problemNote(e)}\n`)
      .catch(() => undefined);
    throw e;
  });
  const { outcome } = measured;
  const view = toPublishView(outcome.results, outcome.files.results);
  const verdict = view.verdict.overall;
  log.setOutput(Output.verdict, verdict);
  log.setOutput(Output.resultsPath, outcome.files.results);
  log.setOutput(Output.reportPath, outcome.files.reportMd);

  const workspace = deps.env.GITHUB_WORKSPACE ?? inputs.workingDirectory;
  annotateRegressions(view, log, {
    file: inputs.suiteFile ? relative(workspace, inputs.suiteFile) : undefined,
    legLabel: leg.label,
  });

  const failures: string[] = [];
  const notes: string[] = [...measured.notes];
  // Each problem's message names its subject (`permissions`, `input artifact-name`...) and what to change.
  const problem = (e: unknown) => {
    failures.push(problemText(e));
    notes.push(problemNote(e));
  };

  // The artifact carries everything a later `mode: report` run needs, including which PR and leg this was.
  const prFilePath = join(outcome.outDir, PR_FILE);
  writeFileSync(prFilePath, `${JSON.stringify(makePrFile(ctx, leg), null, 2)}\n`);
  const f = outcome.files;
  const artifactName = artifactNameFor(inputs.artifactName, leg.id);
  let artifact: RenderInfo["artifact"];
  try {
    // An A/B has no top-level records (each run keeps its own): upload what exists.
    const files = [f.results, f.records, f.reportMd, f.reportHtml, f.serverLog, ...f.extra, prFilePath].filter(
      (x): x is string => x !== undefined && existsSync(x),
    );
    const up = await uploadRunArtifact(
      deps.artifacts,
      artifactName,
      outcome.outDir,
      files,
      inputs.artifactRetentionDays,
    );
    artifact = { name: up.name, url: up.id !== undefined ? `${runUrl(ctx)}/artifacts/${up.id}` : undefined };
  } catch (e) {
    problem(e);
  }

  const marker = commentMarker(slug(view.suite.name), leg.id);
  const info: RenderInfo = { marker, legLabel: leg.label, runUrl: runUrl(ctx), artifact };
  const pr = pullRequestOf(ctx);
  let comment: StickyCommentResult | undefined;
  if (!pr) {
    notes.push(`No PR comment: the event is ${esc(ctx.eventName || "unknown")}, not a pull request.`);
  } else if (inputs.commentMode === "off") {
    notes.push("No PR comment: `comment-mode` is off.");
  } else if (isFromFork(pr) && ctx.eventName === "pull_request") {
    // The token is read-only here whatever `permissions:` says; trying would only produce a 403.
    notes.push(
      `No PR comment from this run: the pull request comes from a fork, whose token is read-only. A \`mode: report\` workflow on \`workflow_run\` posts it from the artifact (${FORK_DOCS}).`,
    );
    log.notice(`tokengate: fork pull request: the comment is left to a mode: report workflow (${FORK_DOCS})`);
  } else if (!inputs.githubToken) {
    problem(missingToken());
  } else {
    try {
      const body = renderComment(view, info).body;
      comment = await upsertStickyComment(
        deps.github(inputs.githubToken),
        { ...ctx.repo, issueNumber: pr.number, marker },
        body,
        inputs.commentMode,
        verdict,
      );
      reportComment(deps, comment, pr.number, notes);
    } catch (e) {
      problem(e);
    }
  }

  await writeSummaryOrWarn(deps, [{ view, info: { ...info, notes }, reportMarkdown: outcome.reportMarkdown }]);
  const gated = gate(verdict, inputs.failOn, view.verdict.reason);
  return { verdict, failures: gated ? [gated, ...failures] : failures };
}

function reportComment(deps: ActionDeps, comment: StickyCommentResult, prNumber: number, notes: string[]): void {
  if (comment.id !== undefined) deps.log.setOutput(Output.commentId, String(comment.id));
  if (comment.url !== undefined) deps.log.setOutput(Output.commentUrl, comment.url);
  if (comment.action === "skipped") {
    notes.push(`No PR comment on #${prNumber}: ${comment.reason}.`);
  } else {
    deps.log.info(`tokengate: PR comment ${comment.action}: ${comment.url}`);
  }
}

async function writeSummaryOrWarn(deps: ActionDeps, sections: SummarySection[]): Promise<void> {
  const { markdown, dropped } = renderSummary(sections);
  if (dropped.length > 0)
    deps.log.info(`tokengate: left out of the job summary to stay under 1 MiB: ${dropped.join(", ")}`);
  try {
    await deps.writeSummary(markdown);
  } catch (e) {
    // Outside a runner there is no GITHUB_STEP_SUMMARY; the results are on disk either way.
    deps.log.warning(`tokengate: could not write the job summary: ${problemText(e)}`);
  }
}

const VERDICT_RANK: Record<VerdictLevel, number> = { pass: 0, warn: 1, fail: 2 };

async function reportMode(deps: ActionDeps, inputs: ActionInputs, ctx: ActionContext): Promise<ActionResult> {
  const { log } = deps;
  const wr = workflowRunOf(ctx);
  if (!inputs.githubToken) {
    throw new BadInputError("is empty; mode: report needs a token to read the other run's artifacts and to comment", {
      subject: `input ${Input.githubToken}`,
      hint: "leave it at its default with `permissions: { actions: read, pull-requests: write }`",
    });
  }
  // Links in the comment point at the run that measured. Its URL comes from the (trusted) event; check it anyway.
  const measuredRunUrl = wr.html_url.startsWith(`${ctx.serverUrl}/`) ? wr.html_url : undefined;
  const other: OtherRun = { token: inputs.githubToken, owner: ctx.repo.owner, repo: ctx.repo.repo, runId: wr.id };
  const legs = await listLegArtifacts(deps.artifacts, other, inputs.artifactName);
  if (legs.length === 0) {
    throw new CouldNotRunError(`run ${wr.id} has no artifact named ${inputs.artifactName}-*`, {
      subject: "mode: report",
      hint: `the measuring workflow needs a tokengate step with \`mode: run\` and the same \`artifact-name\` (now "${inputs.artifactName}"); a run cancelled before it finished has none`,
    });
  }
  if (legs.length > REPORT_LIMITS.artifacts) {
    log.warning(
      `tokengate: run ${wr.id} has ${legs.length} tokengate artifacts; reporting the first ${REPORT_LIMITS.artifacts}`,
    );
  }

  const failures: string[] = [];
  const sections: SummarySection[] = [];
  const runNotes: string[] = [];
  let worst: VerdictLevel | undefined;
  let annotated = 0;
  const client = deps.github(inputs.githubToken);

  for (const art of legs.slice(0, REPORT_LIMITS.artifacts)) {
    const channel = `artifact ${art.name}`; // subject of errors about this artifact
    let view: PublishView;
    let prFile: PrFile | undefined;
    try {
      const files = await fetchLegFiles(deps.artifacts, other, art);
      if (!files.results) throw new BadInputError("has no results.json", { subject: channel });
      let json: unknown;
      try {
        json = JSON.parse(files.results.toString("utf8"));
      } catch {
        throw new BadInputError("results.json is not JSON", { subject: channel });
      }
      view = toPublishView(json, `${channel}: results.json`);
      prFile = files.pr ? parsePrFile(files.pr, channel) : undefined;
    } catch (e) {
      failures.push(problemText(e));
      runNotes.push(problemNote(e));
      continue;
    }
    const legId = prFile?.leg.id ?? slug(art.name.slice(inputs.artifactName.length + 1), 60);
    const legLabel = prFile?.leg.label ?? legId;
    const marker = commentMarker(slug(view.suite.name), legId);
    // Who measured, from the trusted event (never from the artifact): reviewers see the comment came via a report run.
    const from = wr.head_repository?.full_name;
    const notes: string[] = [];
    const commentNotes = [
      `Measured by ${measuredRunUrl ? `[run ${wr.id}](${measuredRunUrl})` : `run ${wr.id}`} at ${wr.head_sha.slice(0, 12)}${from ? ` of ${esc(from, { maxLength: 100 })}` : ""}; posted from its artifact by a \`mode: report\` run.`,
    ];
    const info: RenderInfo = {
      notes: commentNotes,
      marker,
      legLabel,
      runUrl: measuredRunUrl,
      artifact: { name: art.name, url: measuredRunUrl ? `${measuredRunUrl}/artifacts/${art.id}` : undefined },
    };
    worst =
      worst === undefined || VERDICT_RANK[view.verdict.overall] > VERDICT_RANK[worst] ? view.verdict.overall : worst;
    annotated += annotateRegressions(view, log, { legLabel, max: MAX_ANNOTATIONS - annotated });

    if (inputs.commentMode === "off") {
      notes.push("No PR comment: `comment-mode` is off.");
    } else {
      try {
        const target = await resolveReportPr(client, ctx, wr, prFile);
        if ("skip" in target) {
          notes.push(`No PR comment: ${esc(target.skip)}.`);
        } else {
          const body = renderComment(view, info).body;
          const res = await upsertStickyComment(
            client,
            { ...ctx.repo, issueNumber: target.number, marker },
            body,
            inputs.commentMode,
            view.verdict.overall,
          );
          reportComment(deps, res, target.number, notes);
        }
      } catch (e) {
        failures.push(problemText(e));
        notes.push(problemNote(e));
      }
    }
    sections.push({ view, info: { ...info, notes: [...commentNotes, ...notes] } });
  }

  if (sections.length > 0) {
    if (runNotes.length > 0) sections[0]!.info.notes = [...runNotes, ...(sections[0]!.info.notes ?? [])];
    await writeSummaryOrWarn(deps, sections);
  } else {
    await deps
      .writeSummary(`### tokengate: nothing to report\n\n${runNotes.map((n) => `> ${n}`).join("\n>\n")}\n`)
      .catch(() => undefined);
  }
  if (worst !== undefined) log.setOutput(Output.verdict, worst);
  const gated =
    worst !== undefined
      ? gate(worst, inputs.failOn, `worst verdict of ${sections.length} leg(s) of run ${wr.id}`)
      : undefined;
  return { verdict: worst, failures: gated ? [gated, ...failures] : failures };
}
