import { resolve } from "node:path";
import { loadResults, updateBaseline } from "../analysis/baseline.js";
import { compareResults } from "../analysis/verdict.js";
import { synthesizeModel } from "../model/synth.js";
import { runPipeline } from "../pipeline.js";
import { renderConsole } from "../report/console.js";
import { renderMarkdown } from "../report/markdown.js";
import { writeTextAtomic } from "../report/write.js";
import { buildLlamaServer } from "../target/llama-build.js";
import { ExitCode, type ExitCodeValue } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { intFlag, oneOf, parseFlags } from "./args.js";

export const HELP = `tokengate: a performance gate for LLM inference

Usage:
  tokengate run [--suite FILE] [--target in-process|llama-server|external] [--model FILE]
                [--server-bin PATH] [--url URL] [--api-key-env NAME] [--baseline FILE|DIR]
                [--trials N] [--out DIR]
  tokengate compare --baseline A.json --candidate B.json [--out report.md]
  tokengate baseline update --from results.json --to baselines/NAME.json
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
    baseline: { type: "string" },
    trials: { type: "string" },
    out: { type: "string" },
    quiet: { type: "boolean" },
  });
  if (v.help) return help(RUN_HELP);
  const target = oneOf(v.target, "--target", ["in-process", "llama-server", "external"] as const);
  const trials = intFlag(v.trials, "--trials", "--trials 5");
  const outcome = await runPipeline({
    outDir: resolve(v.out ?? "tokengate-results"),
    ...(v.suite ? { suiteFile: resolve(v.suite) } : {}),
    ...(target ? { target } : {}),
    ...(v.model ? { modelPath: resolve(v.model) } : {}),
    ...(v["server-bin"] ? { serverBin: resolve(v["server-bin"]) } : {}),
    ...(v.url ? { url: v.url } : {}),
    ...(v["api-key-env"] ? { apiKeyEnv: v["api-key-env"] } : {}),
    ...(v.baseline ? { baselinePath: resolve(v.baseline) } : {}),
    ...(trials ? { trials } : {}),
    ...(v.quiet ? { quiet: true } : {}),
  });
  process.stdout.write(`\nwrote ${outcome.files.results}, ${outcome.files.records}, ${outcome.files.reportMd}\n`);
  return outcome.exitCode;
}

export async function runCompareCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("compare", argv, {
    baseline: { type: "string" },
    candidate: { type: "string" },
    out: { type: "string" },
  });
  if (v.help) return help("tokengate compare --baseline A.json --candidate B.json [--out report.md]\n");
  if (!v.baseline || !v.candidate) {
    const { BadInputError } = await import("../util/errors.js");
    throw new BadInputError("needs both --baseline and --candidate", {
      subject: "tokengate compare",
      hint: "tokengate compare --baseline baselines/ci.json --candidate tokengate-results/results.json",
    });
  }
  const [baseline, candidate] = await Promise.all([
    loadResults(resolve(v.baseline)),
    loadResults(resolve(v.candidate)),
  ]);
  const judged = { ...candidate, verdict: compareResults(baseline, candidate) };
  process.stdout.write(`${renderConsole(judged)}\n`);
  if (v.out) {
    writeTextAtomic(resolve(v.out), renderMarkdown(judged, { label: v.baseline }));
    process.stdout.write(`wrote ${resolve(v.out)}\n`);
  }
  return judged.verdict.overall === "fail" ? ExitCode.fail : ExitCode.pass;
}

export async function runBaselineCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("baseline update", argv, {
    from: { type: "string" },
    to: { type: "string" },
    name: { type: "string" },
  });
  if (v.help) return help("tokengate baseline update --from results.json --to baselines/NAME.json [--name NAME]\n");
  if (!v.from || !v.to) {
    const { BadInputError } = await import("../util/errors.js");
    throw new BadInputError("needs --from and --to", {
      subject: "tokengate baseline update",
      hint: "tokengate baseline update --from tokengate-results/results.json --to baselines/ci-cpu.json",
    });
  }
  const r = await updateBaseline({ from: resolve(v.from), to: resolve(v.to), ...(v.name ? { name: v.name } : {}) });
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(
    `${r.replaced ? "replaced" : "wrote"} ${r.file}: commit it in a pull request so the new baseline is reviewed\n`,
  );
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
