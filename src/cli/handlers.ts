import { resolve } from "node:path";
import { loadRuns, updateBaseline } from "../analysis/baseline.js";
import { formatValidation, validateFiles } from "../analysis/validate.js";
import { compareResults } from "../analysis/verdict.js";
import { LIMITS } from "../config/limits.js";
import { synthesizeModel } from "../model/synth.js";
import { runPipeline } from "../pipeline.js";
import { renderConsole } from "../report/console.js";
import { renderMarkdown } from "../report/markdown.js";
import { writeTextAtomic } from "../report/write.js";
import { buildLlamaServer } from "../target/llama-build.js";
import { ExitCode, type ExitCodeValue } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { durationFlag, intFlag, oneOf, parseFlags } from "./args.js";

export const HELP = `tokengate: a performance gate for LLM inference

Usage:
  tokengate run [--suite FILE] [--target in-process|llama-server|external] [--model FILE]
                [--server-bin PATH] [--url URL] [--api-key-env NAME] [--baseline FILE|DIR]
                [--wait-for-server DURATION] [--trials N] [--out DIR]
  tokengate ab [--suite FILE] [--base-suite FILE] [--server-bin PATH] [--base-server-bin PATH]
               [--model FILE] [--base-model FILE] [--server-flags "..."] [--base-server-flags "..."]
               [--pairs N] [--aa] [--out DIR]      (same-runner A/B; tokengate ab --help)
  tokengate compare --baseline A.json --candidate B.json [--candidate B2.json]... [--out report.md]
  tokengate baseline update --from results.json [--from more.json]... --to baselines/NAME.json
  tokengate validate --a A1.json A2.json... [--b B1.json B2.json...] [--comparisons N] [--seed N]
                     [--k N] [--baseline-runs N]
  tokengate model synth --preset tiny|small|medium|7b [--type f16|q8_0|q4_0] [--vocab NAME]
                        [--seed N] [--threads N] [--layers N] --out FILE
  tokengate server build [--backend auto|cpu|cuda] [--jobs N] [--cmake-flag FLAG]... [--force] [--print-path]
                        [--source DIR|BUNDLE [--source-tag TAG]]

With no flags, \`tokengate run\` runs examples/suites/quick.yml on the embedded default: a synthetic tiny model
(random weights, real llama tokenizer) served in-process. Exit codes: 0 pass or warn, 1 fail, 2 bad input,
3 could not run.
`;

const RUN_HELP = `tokengate run: start the target, run the suite, write results.json, records.ndjson, report.md

  --suite FILE        suite file (YAML or JSON); default examples/suites/quick.yml
  --target KIND       in-process (default) | llama-server | external
  --model FILE        GGUF model; default the suite's, else the embedded synthetic tiny model
  --server-bin PATH   llama-server binary; default PATH, then the \`tokengate server build\` cache
  --url URL           external target base URL, e.g. http://127.0.0.1:8080
  --api-key-env NAME  environment variable with the external server's API key (default TOKENGATE_API_KEY)
  --wait-for-server DURATION
                      external: keep retrying this long while nothing listens at --url (a server still
                      starting), e.g. 120s or 2m; default: a refused connection is an error within seconds
  --baseline PATH     results or baseline file (or a folder of baselines) to compare with
  --trials N          repeated trials per test (overrides the suite)
  --out DIR           output folder (default tokengate-results)
`;

function help(text: string): ExitCodeValue {
  process.stdout.write(text);
  return ExitCode.pass;
}

export async function runRunCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("run", argv, {
    suite: { type: "string" },
    target: { type: "string" },
    model: { type: "string" },
    "server-bin": { type: "string" },
    url: { type: "string" },
    "api-key-env": { type: "string" },
    "wait-for-server": { type: "string" },
    baseline: { type: "string" },
    trials: { type: "string" },
    out: { type: "string" },
    quiet: { type: "boolean" },
  });
  if (v.help) return help(RUN_HELP);
  const target = oneOf(v.target, "--target", ["in-process", "llama-server", "external"] as const);
  const trials = intFlag(v.trials, "--trials", "--trials 5", 1, LIMITS.trials);
  const waitForServerMs = durationFlag(
    v["wait-for-server"],
    "--wait-for-server",
    "--wait-for-server 2m",
    LIMITS.waitMs.max,
  );
  const outcome = await runPipeline({
    outDir: resolve(v.out ?? "tokengate-results"),
    ...(v.suite ? { suiteFile: resolve(v.suite) } : {}),
    ...(target ? { target } : {}),
    ...(v.model ? { modelPath: resolve(v.model) } : {}),
    ...(v["server-bin"] ? { serverBin: resolve(v["server-bin"]) } : {}),
    ...(v.url ? { url: v.url } : {}),
    ...(v["api-key-env"] ? { apiKeyEnv: v["api-key-env"] } : {}),
    ...(waitForServerMs !== undefined ? { waitForServerMs } : {}),
    ...(v.baseline ? { baselinePath: resolve(v.baseline) } : {}),
    ...(trials ? { trials } : {}),
    ...(v.quiet ? { quiet: true } : {}),
  });
  process.stdout.write(`\nwrote ${outcome.files.results}, ${outcome.files.records}, ${outcome.files.reportMd}\n`);
  return outcome.exitCode;
}

/** Flags that set the comparison policy, shared by compare and validate (docs/verdicts.md "Defaults"). */
const POLICY_FLAGS = {
  "warn-threshold": { type: "string" },
  "fail-threshold": { type: "string" },
  "run-noise": { type: "string" },
  "busy-machine": { type: "string" },
} as const;

const POLICY_HELP = `  --warn-threshold F    a significant regression at or above this warns (default 5%)
  --fail-threshold F    ... fails (default 10%)
  --run-noise F         assumed run-to-run noise (default 3% with a GPU, 30% without; tokengate validate measures it)
  --busy-machine F      never fail a run while other work used more of the CPUs (default 25%; 1 turns it off)
  F is a percent (10%) or a fraction (0.10).
`;

async function policyFlags(v: Partial<Record<keyof typeof POLICY_FLAGS, string>>) {
  const { parseFraction, resolvePolicy } = await import("../analysis/policy.js");
  const input = {
    ...(v["warn-threshold"] ? { warn: parseFraction(v["warn-threshold"], "--warn-threshold") } : {}),
    ...(v["fail-threshold"] ? { fail: parseFraction(v["fail-threshold"], "--fail-threshold") } : {}),
    ...(v["run-noise"] ? { runNoise: parseFraction(v["run-noise"], "--run-noise") } : {}),
    ...(v["busy-machine"] ? { busyMachine: parseFraction(v["busy-machine"], "--busy-machine") } : {}),
  };
  // Checked here so a bad combination names the flags (warn above fail, ...).
  resolvePolicy(input, {
    warn: "--warn-threshold",
    fail: "--fail-threshold",
    runNoise: "--run-noise",
    busyMachine: "--busy-machine",
  });
  return input;
}

export async function runCompareCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("compare", argv, {
    baseline: { type: "string" },
    candidate: { type: "string", multiple: true },
    out: { type: "string" },
    ...POLICY_FLAGS,
  });
  if (v.help) {
    return help(
      "tokengate compare --baseline A.json --candidate B.json [--candidate B2.json]... [--out report.md]\n" +
        "  several --candidate: separate runs of the candidate, judged together as runs (not as more trials of one)\n" +
        POLICY_HELP,
    );
  }
  const policy = await policyFlags(v);
  if (!v.baseline || !v.candidate?.length) {
    const { BadInputError } = await import("../util/errors.js");
    throw new BadInputError("needs both --baseline and --candidate", {
      subject: "tokengate compare",
      hint: "tokengate compare --baseline baselines/ci.json --candidate tokengate-results/results.json",
    });
  }
  // A multi-run baseline compares as its runs, never flattened into one run's trials.
  const [baseline, ...candidates] = await Promise.all([
    loadRuns(resolve(v.baseline)),
    ...v.candidate.map((f) => loadRuns(resolve(f))),
  ]);
  const candidate = candidates.flat();
  const judged = { ...candidate[0]!, verdict: compareResults(baseline, candidate, policy) };
  process.stdout.write(`${renderConsole(judged)}\n`);
  if (v.out) {
    writeTextAtomic(resolve(v.out), renderMarkdown(judged, { label: v.baseline }));
    process.stdout.write(`wrote ${resolve(v.out)}\n`);
  }
  return judged.verdict.overall === "fail" ? ExitCode.fail : ExitCode.pass;
}

export async function runBaselineCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("baseline update", argv, {
    from: { type: "string", multiple: true },
    to: { type: "string" },
    name: { type: "string" },
    "allow-partial": { type: "boolean" },
  });
  if (v.help) {
    return help(
      "tokengate baseline update --from results.json [--from more.json]... --to baselines/NAME.json [--name NAME] [--allow-partial]\n" +
        "  several --from: runs of separate `tokengate run`s (fresh server processes), so comparisons measure run-to-run noise\n" +
        "  --allow-partial: promote a run that was interrupted, aborted, or failed on errors (refused otherwise, exit 2)\n",
    );
  }
  if (!v.from?.length || !v.to) {
    const { BadInputError } = await import("../util/errors.js");
    throw new BadInputError("needs --from and --to", {
      subject: "tokengate baseline update",
      hint: "tokengate baseline update --from tokengate-results/results.json --to baselines/ci-cpu.json",
    });
  }
  const r = await updateBaseline({
    from: v.from.map((f) => resolve(f)),
    to: resolve(v.to),
    ...(v.name ? { name: v.name } : {}),
    ...(v["allow-partial"] ? { allowPartial: true } : {}),
  });
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(
    `${r.replaced ? "replaced" : "wrote"} ${r.file}: commit it in a pull request so the new baseline is reviewed\n`,
  );
  return ExitCode.pass;
}

const VALIDATE_HELP = `tokengate validate: how often the verdict statistics fail or warn on real runs (docs/verdicts.md)

  --a FILE...           runs of A, the baseline side: results.json files of separate runs (or baselines)
  --b FILE...           runs of B: A' (A/A) or a slower setup (A/B); without it, A/A within A's runs
  --comparisons N       resampled comparisons (default 200, at least 100)
  --seed N              seed of the resampling (default 1)
  --k N                 trials per run in each comparison (default: the policy's minTrials, 5)
  --baseline-runs N     runs per baseline in each comparison (default 3, or fewer when there are fewer runs)

Each comparison draws baseline runs of A and a candidate run of B (distinct runs), K trials of each, judges them as
the gate would, and confirms a fail with one more run of B (a fresh server process).
`;

export async function runValidateCommand(argv: string[]): Promise<ExitCodeValue> {
  // --a and --b take several files each (\`--a a1.json a2.json\`); parseArgs takes one value per flag, so the file
  // lists are gathered here first: every argument up to the next flag belongs to the flag before it.
  const lists: Record<"a" | "b", string[]> = { a: [], b: [] };
  const rest: string[] = [];
  let into: "a" | "b" | undefined;
  for (const arg of argv) {
    if (arg === "--a" || arg === "--b") into = arg === "--a" ? "a" : "b";
    else if (arg.startsWith("-")) {
      into = undefined;
      rest.push(arg);
    } else if (into) lists[into].push(arg);
    else rest.push(arg);
  }
  const { values: v } = parseFlags("validate", rest, {
    comparisons: { type: "string" },
    seed: { type: "string" },
    k: { type: "string" },
    "baseline-runs": { type: "string" },
    ...POLICY_FLAGS,
  });
  if (v.help) return help(VALIDATE_HELP + POLICY_HELP);
  const policy = await policyFlags(v);
  if (lists.a.length === 0) {
    const { BadInputError } = await import("../util/errors.js");
    throw new BadInputError("needs --a with one or more results files", {
      subject: "tokengate validate",
      hint: "tokengate validate --a runs/a1/results.json runs/a2/results.json runs/a3/results.json runs/a4/results.json",
    });
  }
  const comparisons = intFlag(v.comparisons, "--comparisons", "--comparisons 200", 100);
  const seed = intFlag(v.seed, "--seed", "--seed 1", 0);
  const k = intFlag(v.k, "--k", "--k 5", 2);
  const baselineRuns = intFlag(v["baseline-runs"], "--baseline-runs", "--baseline-runs 3");
  const r = await validateFiles({
    a: lists.a.map((f) => resolve(f)),
    ...(lists.b.length ? { b: lists.b.map((f) => resolve(f)) } : {}),
    ...(comparisons !== undefined ? { comparisons } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(k !== undefined ? { k } : {}),
    ...(baselineRuns !== undefined ? { baselineRuns } : {}),
    policy,
  });
  process.stdout.write(formatValidation(r));
  return ExitCode.pass;
}

export async function runSynthCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("model synth", argv, {
    preset: { type: "string" },
    type: { type: "string" },
    vocab: { type: "string" },
    seed: { type: "string" },
    threads: { type: "string" },
    layers: { type: "string" },
    out: { type: "string" },
  });
  if (v.help) return help(HELP);
  const { BadInputError } = await import("../util/errors.js");
  if (!v.preset)
    throw new BadInputError("needs --preset", {
      subject: "tokengate model synth",
      hint: "--preset tiny --out tiny.gguf",
    });
  if (!v.out)
    throw new BadInputError("needs --out", {
      subject: "tokengate model synth",
      hint: `--preset ${v.preset} --out model.gguf`,
    });
  const seed = intFlag(v.seed, "--seed", "--seed 42", 0);
  const threads = intFlag(v.threads, "--threads", "--threads 8", 0);
  const layers = intFlag(v.layers, "--layers", "--layers 35");
  let progress: ReturnType<typeof createProgress> | undefined;
  const r = await synthesizeModel({
    preset: v.preset,
    out: resolve(v.out),
    ...(v.type ? { type: v.type } : {}),
    ...(v.vocab ? { vocab: v.vocab } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(layers !== undefined ? { layers } : {}),
    onProgress: (done: number, total: number) => {
      progress ??= createProgress({ label: `writing ${v.preset}`, total, unit: "bytes" });
      progress.update(done);
    },
  });
  progress?.done();
  process.stdout.write(
    `${r.path}\n  ${(r.params / 1e6).toFixed(1)}M params, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, sha256 ${r.sha256}, ${r.seconds.toFixed(1)} s\n`,
  );
  return ExitCode.pass;
}

export async function runBuildCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("server build", argv, {
    backend: { type: "string" },
    jobs: { type: "string" },
    "cmake-flag": { type: "string", multiple: true },
    force: { type: "boolean" },
    "print-path": { type: "boolean" },
    source: { type: "string" },
    "source-tag": { type: "string" },
  });
  if (v.help) return help(HELP);
  const backend = oneOf(v.backend, "--backend", ["auto", "cpu", "cuda"] as const);
  const jobs = intFlag(v.jobs, "--jobs", "--jobs 4");
  const r = await buildLlamaServer({
    ...(backend ? { backend } : {}),
    ...(jobs ? { jobs } : {}),
    ...(v["cmake-flag"] ? { extraFlags: v["cmake-flag"] } : {}),
    ...(v.force ? { force: true } : {}),
    ...(v["print-path"] ? { quiet: true } : {}),
    ...(v.source ? { source: resolve(v.source) } : {}),
    ...(v["source-tag"] ? { sourceTag: v["source-tag"] } : {}),
  });
  if (!v["print-path"]) {
    process.stderr.write(
      r.cached
        ? `llama-server (${r.plan.backend}) is cached: ${r.plan.dir}\n`
        : `built llama-server (${r.plan.backend}) into ${r.plan.dir}\n`,
    );
  }
  // The binary path is always the last line (and with --print-path the only one), so scripts can capture it.
  process.stdout.write(`${r.serverBin}\n`);
  return ExitCode.pass;
}
