import { resolve } from "node:path";
import { DEFAULT_PAIRS, runAb } from "../arms/ab.js";
import { splitFlags } from "../arms/arm.js";
import { BadInputError, type ExitCodeValue } from "../util/errors.js";
import { intFlag, oneOf, parseFlags } from "./args.js";

export const AB_HELP = `tokengate ab: the same-runner A/B gate. Both arms run on this machine, interleaved (A B B A ...),
each run in a freshly started server, and are judged as pairs with the suite's policy.

  arm A (the base) inherits every head setting below that no --base-* flag overrides:
  --suite FILE               the suite (head arm; also the base's unless --base-suite)
  --base-suite FILE          the base's suite, e.g. the base branch's copy:
                             git show origin/main:perf/suite.yml > /tmp/base.yml; --base-suite /tmp/base.yml
  --server-bin PATH          head llama-server binary      --base-server-bin PATH   base binary
  --server-source DIR        head llama.cpp source to build --base-server-source DIR (cached per source)
  --model FILE               head model                     --base-model FILE        base model
  --server-flags="FLAGS"     head server flags (replace the suite's target.serverFlags; split on spaces;
  --base-server-flags="FLAGS"   write them with = since they start with a dash: --server-flags="-t 2")
  --label NAME               head arm's name in reports (default head); --base-label NAME (default base)
  --target KIND              in-process | llama-server (an external server cannot be restarted per run)
  --pairs N                  interleaved pairs (default ${DEFAULT_PAIRS}: A B B A A B)
  --trials N                 trials per test in every run (overrides the suite)
  --aa                       allow identical arms: measure the gate's own A/A noise
  --out DIR                  output folder (default tokengate-ab)

Exit codes: 0 pass or warn, 1 fail, 2 bad input (an arm named), 3 could not run (an arm named).
Example: tokengate ab --target llama-server --base-server-flags="-t 1" --server-flags="-t 2" --pairs 3
`;

export async function runAbCommand(argv: string[]): Promise<ExitCodeValue> {
  const { values: v } = parseFlags("ab", argv, {
    suite: { type: "string" },
    "base-suite": { type: "string" },
    "server-bin": { type: "string" },
    "base-server-bin": { type: "string" },
    "server-source": { type: "string" },
    "base-server-source": { type: "string" },
    model: { type: "string" },
    "base-model": { type: "string" },
    "server-flags": { type: "string" },
    "base-server-flags": { type: "string" },
    label: { type: "string" },
    "base-label": { type: "string" },
    target: { type: "string" },
    pairs: { type: "string" },
    trials: { type: "string" },
    aa: { type: "boolean" },
    out: { type: "string" },
    quiet: { type: "boolean" },
  });
  if (v.help) {
    process.stdout.write(AB_HELP);
    return 0;
  }
  const target = oneOf(v.target, "--target", ["in-process", "llama-server", "external"] as const);
  if (target === "external") {
    throw new BadInputError("an A/B starts every run in a fresh server, which an external server cannot do", {
      subject: "--target external",
      hint: "use --target llama-server with --base-server-bin / --server-bin, or compare two runs with tokengate compare",
    });
  }
  const pairs = intFlag(v.pairs, "--pairs", "--pairs 3", 2);
  const trials = intFlag(v.trials, "--trials", "--trials 5");
  const path = (p: string | undefined) => (p ? resolve(p) : undefined);
  const arm = (side: "base" | "head") => {
    const pre = side === "base" ? "base-" : "";
    const get = (k: string) => (v as Record<string, string | undefined>)[`${pre}${k}`];
    const flags = get("server-flags");
    const out = {
      label: get("label") ?? side,
      ...(get("suite") ? { suiteFile: path(get("suite"))! } : {}),
      ...(get("server-bin") ? { serverBin: path(get("server-bin"))! } : {}),
      ...(get("server-source") ? { serverSource: path(get("server-source"))! } : {}),
      ...(get("model") ? { modelPath: path(get("model"))! } : {}),
      ...(flags !== undefined ? { serverFlags: splitFlags(flags, `--${pre}server-flags`) } : {}),
    };
    return out;
  };
  const head = arm("head");
  // The base inherits whatever the head sets and it does not (one suite file, one binary...): only what a --base-*
  // flag names differs between the arms.
  const { label: _headLabel, ...shared } = head;
  const base = { ...shared, ...arm("base") };
  const outcome = await runAb({
    base: {
      outDir: resolve(v.out ?? "tokengate-ab"),
      ...(head.suiteFile ? { suiteFile: head.suiteFile } : {}),
      ...(target ? { target } : {}),
      ...(trials ? { trials } : {}),
      ...(v.quiet ? { quiet: true } : {}),
    },
    a: base,
    b: head,
    ...(pairs ? { pairs } : {}),
    ...(v.aa ? { allowIdentical: true } : {}),
  });
  const f = outcome.files;
  process.stdout.write(
    `\nwrote ${[f.results, f.reportMd, ...(f.reportHtml ? [f.reportHtml] : []), ...f.extra].join(", ")}; every run's files in ${outcome.outDir}/runs/\n`,
  );
  return outcome.exitCode;
}
