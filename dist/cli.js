import { createRequire as __tokengateCreateRequire } from "node:module";
const require = __tokengateCreateRequire(import.meta.url);
import { BadInputError, ExitCode, isTokengateError } from './chunks/errors-B0m1Om91.js';
import { resolve } from 'node:path';
import { D as DEFAULT_PAIRS, g as runAb, s as splitFlags, j as formatChange, k as loadRuns, m as resolvePolicy, q as seededRandom, t as binomial, v as compareTests, x as summarize, y as applyConfirmation, z as formatPercent, A as synthesizeModel, u as updateBaseline, B as compareResults, C as renderConsole, E as writeTextAtomic, F as renderMarkdown, L as LIMITS, h as runPipeline, i as redact } from './chunks/pipeline-C5nEdgzE.js';
import { parseArgs } from 'node:util';
import { b as buildLlamaServer, c as createProgress, s as stopAllChildren, i as interruptExitCode, a as interruptSignal } from './chunks/protocol-k0Y9jnbw.js';
import 'node:fs';
import 'node:fs/promises';
import './chunks/histogram-BGWSAc6_.js';
import './chunks/_commonjsHelpers-Bu8mXMAf.js';
import 'node:assert';
import 'node:net';
import 'node:http';
import 'node:stream';
import 'node:querystring';
import 'node:events';
import 'node:diagnostics_channel';
import 'node:buffer';
import 'node:tls';
import 'node:zlib';
import 'node:perf_hooks';
import 'node:util/types';
import 'node:crypto';
import 'node:worker_threads';
import 'node:url';
import 'node:async_hooks';
import 'node:console';
import 'node:timers';
import 'node:dns';
import 'node:os';
import 'node:timers/promises';
import 'node:dns/promises';
import 'node:child_process';
import 'node:module';
import 'process';
import 'buffer';
import 'readline';
import 'events';

/**
 * Strict flag parsing for one subcommand (node:util parseArgs). Unknown flags, missing values and stray positionals
 * become BadInputError naming the flag and pointing at `--help`.
 */
function parseFlags(command, argv, options) {
    try {
        return parseArgs({
            args: argv,
            options: { ...options, help: { type: "boolean", short: "h" } },
            strict: true,
            allowPositionals: false,
        });
    }
    catch (e) {
        const err = e;
        const flag = /'(-[^']+)'/.exec(err.message)?.[1] ?? /(--?[\w-]+)/.exec(err.message)?.[1];
        throw new BadInputError(err.message.replace(/\. To specify.*$/s, "").replace(/\s+$/, ""), {
            subject: `tokengate ${command}${flag ? ` ${flag}` : ""}`,
            hint: `see \`tokengate ${command} --help\``,
        });
    }
}
function intFlag(value, flag, example, min = 1, limit) {
    if (value === undefined)
        return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || (limit !== undefined && n > limit.max)) {
        const range = limit ? `from ${min} to ${limit.max} (${limit.why})` : `>= ${min}`;
        throw new BadInputError(`must be an integer ${range}, got "${value}"`, { subject: flag, hint: example });
    }
    return n;
}
function oneOf(value, flag, choices) {
    if (value === undefined)
        return undefined;
    if (!choices.includes(value)) {
        throw new BadInputError(`must be one of ${choices.join(", ")}, got "${value}"`, {
            subject: flag,
            hint: `${flag} ${choices[0]}`,
        });
    }
    return value;
}
const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/**
 * A duration flag in milliseconds: `120s`, `2m`, `1.5s`, `500ms`, `1h`, or a bare number of milliseconds (`90000`).
 * At most `maxMs`; anything else (`2 minutes`, `-5s`, `5x`) is a BadInputError naming the flag.
 */
function durationFlag(value, flag, example, maxMs = 24 * 3_600_000) {
    if (value === undefined)
        return undefined;
    const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/i.exec(value);
    const bad = (why) => {
        throw new BadInputError(`${why}, got ${JSON.stringify(value)}`, {
            subject: flag,
            hint: `${example} (units: ms, s, m, h; a bare number is milliseconds)`,
        });
    };
    if (!m)
        return bad("must be a duration such as 120s, 2m or 500ms");
    const ms = Math.round(Number(m[1]) * DURATION_UNITS_MS[(m[2] ?? "ms").toLowerCase()]);
    if (ms > maxMs)
        return bad(`must be at most ${maxMs / 60_000} minutes`);
    return ms;
}

const AB_HELP = `tokengate ab: the same-runner A/B gate. Both arms run on this machine, interleaved (A B B A ...),
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
async function runAbCommand(argv) {
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
    const target = oneOf(v.target, "--target", ["in-process", "llama-server", "external"]);
    if (target === "external") {
        throw new BadInputError("an A/B starts every run in a fresh server, which an external server cannot do", {
            subject: "--target external",
            hint: "use --target llama-server with --base-server-bin / --server-bin, or compare two runs with tokengate compare",
        });
    }
    const pairs = intFlag(v.pairs, "--pairs", "--pairs 3", 2);
    const trials = intFlag(v.trials, "--trials", "--trials 5");
    const path = (p) => (p ? resolve(p) : undefined);
    const arm = (side) => {
        const pre = side === "base" ? "base-" : "";
        const get = (k) => v[`${pre}${k}`];
        const flags = get("server-flags");
        const out = {
            label: get("label") ?? side,
            ...(get("suite") ? { suiteFile: path(get("suite")) } : {}),
            ...(get("server-bin") ? { serverBin: path(get("server-bin")) } : {}),
            ...(get("server-source") ? { serverSource: path(get("server-source")) } : {}),
            ...(get("model") ? { modelPath: path(get("model")) } : {}),
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
    process.stdout.write(`\nwrote ${[f.results, f.reportMd, ...(f.reportHtml ? [f.reportHtml] : []), ...f.extra].join(", ")}; every run's files in ${outcome.outDir}/runs/\n`);
    return outcome.exitCode;
}

function validateVerdicts(input) {
    const policy = resolvePolicy({ ...input.policy });
    const k = input.k ?? policy.minTrials;
    const comparisons = input.comparisons ?? 200;
    const confirm = (input.confirm ?? true) && policy.confirmFails;
    if (!Number.isInteger(comparisons) || comparisons < 100) {
        throw new BadInputError(`needs at least 100 comparisons, got ${comparisons}`, {
            subject: "comparisons",
            hint: "e.g. 200",
        });
    }
    if (!Number.isInteger(k) || k < 2) {
        throw new BadInputError(`trials per side must be an integer >= 2, got ${k}`, { subject: "k", hint: "e.g. 5" });
    }
    const aRuns = toRuns(input.a);
    const pooled = input.b === undefined;
    const bRuns = pooled ? aRuns : toRuns(input.b);
    if (aRuns.length === 0 || bRuns.length === 0) {
        throw new BadInputError("no runs to validate with", { subject: "a", hint: "pass results files of separate runs" });
    }
    const names = aRuns[0].tests.map((t) => t.name).filter((n) => bRuns[0].tests.some((u) => u.name === n));
    if (names.length === 0) {
        throw new BadInputError("the two sides share no test", {
            subject: "b",
            hint: "validate with runs of the same suite",
        });
    }
    const trialsOf = (runs) => Math.min(...runs.map((r) => Math.min(...names.map((n) => trialCount(r.tests.find((t) => t.name === n))))));
    const na = trialsOf(aRuns);
    const nb = trialsOf(bRuns);
    const random = seededRandom(`validate:${input.seed ?? policy.seed}`);
    // The interval is reported, never decided on (docs): skipping it keeps hundreds of comparisons fast.
    const fast = { perRequest: false, interval: false };
    const judge = (base, cand) => summarize(compareTests(base, cand, policy, fast).filter((c) => c.metric !== "*"));
    const runsMode = pooled ? aRuns.length >= 2 : aRuns.length >= 2 || bRuns.length >= 2;
    const mode = runsMode ? "runs" : pooled ? "split" : "two-runs";
    let baselineRuns = 1;
    let confirmation = confirm ? (runsMode ? "fresh run" : "same run") : "off";
    let distinctRunDraws = 1;
    if (runsMode) {
        const available = pooled ? aRuns.length - 1 : aRuns.length;
        // By default leave a run of the pool for the confirmation rerun.
        baselineRuns = input.baselineRuns ?? Math.min(3, pooled ? Math.max(1, available - 1) : available);
        if (!Number.isInteger(baselineRuns) || baselineRuns < 1 || baselineRuns > available) {
            throw new BadInputError(`${baselineRuns} baseline runs cannot be drawn: side A has ${aRuns.length} runs${pooled ? " and one must be the candidate" : ""}`, { subject: "baselineRuns", hint: `at most ${available}; or measure more runs` });
        }
        const spareB = pooled ? aRuns.length - baselineRuns - 1 : bRuns.length - 1;
        if (confirm && spareB < 1)
            confirmation = "unavailable";
        if (na < k || nb < k) {
            throw new BadInputError(`each run needs at least ${k} trials per test; A has ${na}, B has ${nb}`, {
                subject: "k",
                hint: `compare with k = ${Math.min(na, nb)}, or measure more trials`,
            });
        }
        distinctRunDraws = pooled
            ? binomial(aRuns.length, baselineRuns) * (aRuns.length - baselineRuns) * Math.max(1, spareB)
            : binomial(aRuns.length, baselineRuns) * bRuns.length * Math.max(1, bRuns.length - 1);
    }
    else {
        const needA = pooled ? 2 * k : k;
        if (na < needA || nb < k) {
            throw new BadInputError(pooled
                ? `splitting one run needs ${2 * k} trials per test (2 x ${k}); it has ${na}`
                : `each run needs at least ${k} trials per test; A has ${na}, B has ${nb}`, { subject: "a", hint: `measure more runs (better) or more trials, e.g. trials: ${Math.max(4 * k, 20)}` });
        }
    }
    const counts = zeroCounts();
    const confirmedCounts = zeroCounts();
    const perMetric = {};
    for (let i = 0; i < comparisons; i++) {
        let base;
        let cand;
        let rerun;
        if (runsMode) {
            if (pooled) {
                const order = draw(aRuns.length, aRuns.length, random);
                base = order.slice(0, baselineRuns).map((j) => subsetRun(aRuns[j], names, k, random));
                cand = subsetRun(aRuns[order[baselineRuns]], names, k, random);
                const spare = order[baselineRuns + 1];
                if (confirmation === "fresh run" && spare !== undefined)
                    rerun = subsetRun(aRuns[spare], names, k, random);
            }
            else {
                base = draw(aRuns.length, baselineRuns, random).map((j) => subsetRun(aRuns[j], names, k, random));
                const order = draw(bRuns.length, Math.min(2, bRuns.length), random);
                cand = subsetRun(bRuns[order[0]], names, k, random);
                if (confirmation === "fresh run" && order[1] !== undefined) {
                    rerun = subsetRun(bRuns[order[1]], names, k, random);
                }
            }
        }
        else {
            const a = aRuns[0];
            const b = bRuns[0];
            let spare;
            if (pooled) {
                const drawn = draw(na, na, random);
                base = [subset(a, names, drawn.slice(0, k))];
                cand = subset(a, names, drawn.slice(k, 2 * k));
                spare = drawn.slice(2 * k);
            }
            else {
                base = [subset(a, names, draw(na, k, random))];
                const drawn = draw(nb, nb, random);
                cand = subset(b, names, drawn.slice(0, k));
                spare = drawn.slice(k);
            }
            // The old rerun in the same process: K more trials of the same run (it shares the first draw's condition).
            if (confirmation === "same run")
                rerun = subset(b, names, spare.length >= k ? spare.slice(0, k) : draw(nb, k, random));
        }
        const checks = compareTests(base, cand, policy, fast).filter((c) => c.metric !== "*");
        const verdict = summarize(checks);
        counts[verdict.overall]++;
        for (const c of checks)
            tally(perMetric, c);
        let final = verdict;
        if (verdict.overall === "fail" && rerun) {
            const alone = runsMode ? { rerunAlone: judge(base, [rerun]) } : {};
            final = applyConfirmation(verdict, judge(base, [cand, rerun]), policy, { runs: 2, ...alone });
        }
        confirmedCounts[final.overall]++;
    }
    const observedChange = {};
    if (!pooled) {
        for (const name of names) {
            for (const g of policy.gate) {
                const level = (runs) => runLevel(runs, name, g.metric, g.stat);
                const la = level(aRuns);
                const lb = level(bRuns);
                if (la !== undefined && lb !== undefined && la > 0)
                    observedChange[`${name}/${g.metric}.${g.stat}`] = lb / la - 1;
            }
        }
    }
    const noise = {
        a: noiseOf(aRuns, names, policy.gate),
        b: pooled ? {} : noiseOf(bRuns, names, policy.gate),
    };
    const rate = (c) => ({
        failRate: c.fail / comparisons,
        warnOrFailRate: (c.fail + c.warn) / comparisons,
    });
    return {
        mode,
        pooled,
        k,
        baselineRuns,
        comparisons,
        runsAvailable: { a: aRuns.length, b: pooled ? aRuns.length : bRuns.length },
        trialsAvailable: { a: na, b: nb },
        distinctRunDraws,
        counts,
        ...rate(counts),
        confirmed: { counts: confirmedCounts, ...rate(confirmedCounts) },
        confirmation,
        perMetric,
        observedChange,
        noise,
        method: describeMethod({ mode, pooled, comparisons, k, baselineRuns, aRuns, bRuns, na, nb, confirmation }),
    };
}
function describeMethod(o) {
    const { comparisons, k } = o;
    if (o.mode === "split") {
        return `${comparisons} comparisons of ${k} vs ${k} trials, each drawn without replacement from the ${o.na} trials of one run and split into disjoint halves`;
    }
    if (o.mode === "two-runs") {
        return `${comparisons} comparisons of ${k} vs ${k} trials, drawn without replacement from A's ${o.na} and B's ${o.nb} trials`;
    }
    const trials = (n) => n > k ? `${k} of each run's ${n} trials drawn without replacement` : `all ${k} trials of each run`;
    const confirmText = o.confirmation === "fresh run"
        ? `; a failing comparison is confirmed with one more distinct run of ${o.pooled ? "the pool" : "B"}`
        : o.confirmation === "unavailable"
            ? "; no spare run for the confirmation rerun"
            : "";
    return o.pooled
        ? `${comparisons} comparisons, each drawing ${o.baselineRuns} baseline run${o.baselineRuns === 1 ? "" : "s"} and 1 candidate run, all distinct, from ${o.aRuns.length} runs (${trials(o.na)})${confirmText}`
        : `${comparisons} comparisons, each drawing ${o.baselineRuns} of A's ${o.aRuns.length} runs as the baseline and 1 of B's ${o.bRuns.length} runs as the candidate (${trials(Math.min(o.na, o.nb))})${confirmText}`;
}
/**
 * The harness on files (what the validation runs write): each side a list of results files (one per run) or
 * baselines (all their runs). A single file per side keeps the older trial-only modes.
 */
async function validateFiles(options) {
    const read = async (files) => {
        const list = typeof files === "string" ? [files] : files;
        const runs = [];
        for (const f of list)
            runs.push(...(await loadRuns(f)));
        return runs;
    };
    const a = await read(options.a);
    const { a: _aFile, b: _bFile, ...rest } = options;
    const input = { ...rest, a };
    if (options.b !== undefined)
        input.b = await read(options.b);
    return validateVerdicts(input);
}
/** The report as the CLI prints it: rates first, then what produced them. */
function formatValidation(r, labels = { a: "A" }) {
    const pct = (x) => formatPercent(x);
    const c = r.counts;
    const f = r.confirmed.counts;
    const kind = r.pooled ? "A/A" : "A vs B";
    const lines = [
        `validate ${kind}: ${r.method}`,
        `  before confirmation: pass ${c.pass}, warn ${c.warn}, fail ${c.fail}: fail ${pct(r.failRate)}, warn-or-fail ${pct(r.warnOrFailRate)}`,
        r.confirmation === "off" || r.confirmation === "unavailable"
            ? `  confirmation rerun: ${r.confirmation}`
            : `  after confirmation (${r.confirmation}): pass ${f.pass}, warn ${f.warn}, fail ${f.fail}: fail ${pct(r.confirmed.failRate)}, warn-or-fail ${pct(r.confirmed.warnOrFailRate)}`,
        r.pooled
            ? `  A/A: false-fail rate ${pct(r.confirmed.failRate)} after confirmation (${pct(r.failRate)} before); target <= 1%`
            : `  if B is A' (A/A): false-fail rate ${pct(r.confirmed.failRate)}; if B is slower (A/B): detected ${pct(r.confirmed.warnOrFailRate)} as warn or fail (target >= 95%), ${pct(r.confirmed.failRate)} as fail (target >= 80%)`,
    ];
    if (r.mode === "runs")
        lines.push(`  distinct run draws: ${r.distinctRunDraws}`);
    const changes = Object.entries(r.observedChange);
    if (changes.length) {
        lines.push(`  observed change B vs A (all runs): ${changes.map(([m, v]) => `${m} ${formatChange(v)}`).join(", ")}`);
    }
    for (const [side, est] of [
        [labels.a, r.noise.a],
        [labels.b ?? "B", r.noise.b],
    ]) {
        const entries = Object.entries(est);
        if (!entries.length)
            continue;
        const med = (xs) => xs.sort((x, y) => x - y)[xs.length >> 1];
        lines.push(`  noise in ${side} (${entries[0][1].runs} runs): run-to-run ${pct(med(entries.map(([, e]) => e.between)))} (median over metrics; max ${pct(Math.max(...entries.map(([, e]) => e.between)))}), trial-to-trial ${pct(med(entries.map(([, e]) => e.within)))}`);
    }
    const worst = Object.entries(r.perMetric)
        .sort(([, x], [, y]) => y.fail + y.warn - (x.fail + x.warn))
        .slice(0, 4);
    if (worst.length) {
        lines.push(`  most flagged: ${worst.map(([m, v]) => `${m} fail ${v.fail} warn ${v.warn}`).join("; ")}`);
    }
    return `${lines.join("\n")}\n`;
}
function toRuns(side) {
    return Array.isArray(side) ? [...side] : [side];
}
function median(values) {
    const v = values.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
    if (v.length === 0)
        return Number.NaN;
    const m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
/** Geometric mean of the runs' medians of one gated statistic (the level the verdict compares). */
function runLevel(runs, test, metric, stat) {
    const medians = runs
        .map((r) => r.tests.find((t) => t.name === test)?.metrics[metric])
        .filter((m) => m !== undefined)
        .map((m) => median(m.trials.map((t) => t[stat])))
        .filter((v) => v > 0);
    if (medians.length === 0)
        return undefined;
    return Math.exp(medians.reduce((a, v) => a + Math.log(v), 0) / medians.length);
}
/** Between-run and within-run noise of each gated statistic, from a side's runs (needs >= 2 runs). */
function noiseOf(runs, names, gate) {
    const out = {};
    if (runs.length < 2)
        return out;
    for (const name of names) {
        for (const g of gate) {
            const perRun = runs
                .map((r) => r.tests.find((t) => t.name === name)?.metrics[g.metric])
                .filter((m) => m !== undefined)
                .map((m) => m.trials
                .map((t) => t[g.stat])
                .filter((v) => v > 0)
                .map(Math.log))
                .filter((v) => v.length > 0);
            if (perRun.length < 2)
                continue;
            let ss = 0;
            let df = 0;
            for (const v of perRun) {
                const m = v.reduce((a, x) => a + x, 0) / v.length;
                for (const x of v)
                    ss += (x - m) ** 2;
                df += v.length - 1;
            }
            const within2 = df > 0 ? ss / df : 0;
            const medians = perRun.map(median);
            const mm = medians.reduce((a, x) => a + x, 0) / medians.length;
            const spread2 = medians.reduce((a, x) => a + (x - mm) ** 2, 0) / (medians.length - 1);
            const meanN = perRun.reduce((a, v) => a + 1 / v.length, 0) / perRun.length;
            const between2 = Math.max(0, spread2 - (Math.PI / 2) * within2 * meanN);
            out[`${name}/${g.metric}.${g.stat}`] = {
                runs: perRun.length,
                between: Math.expm1(Math.sqrt(between2)),
                within: Math.expm1(Math.sqrt(within2)),
            };
        }
    }
    return out;
}
function zeroCounts() {
    return { pass: 0, warn: 0, fail: 0 };
}
function tally(perMetric, c) {
    if (c.verdict === "pass")
        return;
    const key = `${c.test}/${c.metric}`;
    const e = perMetric[key] ?? { fail: 0, warn: 0 };
    e[c.verdict]++;
    perMetric[key] = e;
}
/** Trials a test has for every metric (metrics can lack a trial when it had no samples); 0 when the test is absent. */
function trialCount(t) {
    if (!t)
        return 0;
    const lengths = Object.values(t.metrics).map((m) => m.trials.length);
    return lengths.length ? Math.min(...lengths) : 0;
}
/** `count` distinct indices in [0, n), in random order (partial Fisher-Yates). */
function draw(n, count, random) {
    const idx = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < count; i++) {
        const j = i + Math.floor(random() * (n - i));
        [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx.slice(0, count);
}
/** One run with K of its trials, drawn without replacement (all of them when it has exactly K). */
function subsetRun(run, names, k, random) {
    const n = Math.min(...names.map((name) => trialCount(run.tests.find((t) => t.name === name))));
    return subset(run, names, n > k ? draw(n, k, random) : Array.from({ length: k }, (_, i) => i));
}
/** The run restricted to the named tests and the given trials (same indices in every metric of a test); histograms dropped. */
function subset(run, names, idx) {
    return {
        ...run,
        tests: run.tests
            .filter((t) => names.includes(t.name))
            .map((t) => ({
            ...t,
            trials: idx.length,
            metrics: Object.fromEntries(Object.entries(t.metrics).map(([key, m]) => {
                const { histogram: _drop, ...rest } = m;
                return [key, { ...rest, trials: idx.map((i) => m.trials[i]) }];
            })),
        })),
    };
}

const HELP = `tokengate: a performance gate for LLM inference

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
function help(text) {
    process.stdout.write(text);
    return ExitCode.pass;
}
async function runRunCommand(argv) {
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
    if (v.help)
        return help(RUN_HELP);
    const target = oneOf(v.target, "--target", ["in-process", "llama-server", "external"]);
    const trials = intFlag(v.trials, "--trials", "--trials 5", 1, LIMITS.trials);
    const waitForServerMs = durationFlag(v["wait-for-server"], "--wait-for-server", "--wait-for-server 2m", LIMITS.waitMs.max);
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
};
const POLICY_HELP = `  --warn-threshold F    a significant regression at or above this warns (default 5%)
  --fail-threshold F    ... fails (default 10%)
  --run-noise F         assumed run-to-run noise (default 3% with a GPU, 30% without; tokengate validate measures it)
  --busy-machine F      never fail a run while other work used more of the CPUs (default 25%; 1 turns it off)
  F is a percent (10%) or a fraction (0.10).
`;
async function policyFlags(v) {
    const { parseFraction, resolvePolicy } = await import('./chunks/pipeline-C5nEdgzE.js').then(function (n) { return n.G; });
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
async function runCompareCommand(argv) {
    const { values: v } = parseFlags("compare", argv, {
        baseline: { type: "string" },
        candidate: { type: "string", multiple: true },
        out: { type: "string" },
        ...POLICY_FLAGS,
    });
    if (v.help) {
        return help("tokengate compare --baseline A.json --candidate B.json [--candidate B2.json]... [--out report.md]\n" +
            "  several --candidate: separate runs of the candidate, judged together as runs (not as more trials of one)\n" +
            POLICY_HELP);
    }
    const policy = await policyFlags(v);
    if (!v.baseline || !v.candidate?.length) {
        const { BadInputError } = await import('./chunks/errors-B0m1Om91.js');
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
    const judged = { ...candidate[0], verdict: compareResults(baseline, candidate, policy) };
    process.stdout.write(`${renderConsole(judged)}\n`);
    if (v.out) {
        writeTextAtomic(resolve(v.out), renderMarkdown(judged, { label: v.baseline }));
        process.stdout.write(`wrote ${resolve(v.out)}\n`);
    }
    return judged.verdict.overall === "fail" ? ExitCode.fail : ExitCode.pass;
}
async function runBaselineCommand(argv) {
    const { values: v } = parseFlags("baseline update", argv, {
        from: { type: "string", multiple: true },
        to: { type: "string" },
        name: { type: "string" },
        "allow-partial": { type: "boolean" },
    });
    if (v.help) {
        return help("tokengate baseline update --from results.json [--from more.json]... --to baselines/NAME.json [--name NAME] [--allow-partial]\n" +
            "  several --from: runs of separate `tokengate run`s (fresh server processes), so comparisons measure run-to-run noise\n" +
            "  --allow-partial: promote a run that was interrupted, aborted, or failed on errors (refused otherwise, exit 2)\n");
    }
    if (!v.from?.length || !v.to) {
        const { BadInputError } = await import('./chunks/errors-B0m1Om91.js');
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
    for (const w of r.warnings)
        process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(`${r.replaced ? "replaced" : "wrote"} ${r.file}: commit it in a pull request so the new baseline is reviewed\n`);
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
async function runValidateCommand(argv) {
    // --a and --b take several files each (\`--a a1.json a2.json\`); parseArgs takes one value per flag, so the file
    // lists are gathered here first: every argument up to the next flag belongs to the flag before it.
    const lists = { a: [], b: [] };
    const rest = [];
    let into;
    for (const arg of argv) {
        if (arg === "--a" || arg === "--b")
            into = arg === "--a" ? "a" : "b";
        else if (arg.startsWith("-")) {
            into = undefined;
            rest.push(arg);
        }
        else if (into)
            lists[into].push(arg);
        else
            rest.push(arg);
    }
    const { values: v } = parseFlags("validate", rest, {
        comparisons: { type: "string" },
        seed: { type: "string" },
        k: { type: "string" },
        "baseline-runs": { type: "string" },
        ...POLICY_FLAGS,
    });
    if (v.help)
        return help(VALIDATE_HELP + POLICY_HELP);
    const policy = await policyFlags(v);
    if (lists.a.length === 0) {
        const { BadInputError } = await import('./chunks/errors-B0m1Om91.js');
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
async function runSynthCommand(argv) {
    const { values: v } = parseFlags("model synth", argv, {
        preset: { type: "string" },
        type: { type: "string" },
        vocab: { type: "string" },
        seed: { type: "string" },
        threads: { type: "string" },
        layers: { type: "string" },
        out: { type: "string" },
    });
    if (v.help)
        return help(HELP);
    const { BadInputError } = await import('./chunks/errors-B0m1Om91.js');
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
    let progress;
    const r = await synthesizeModel({
        preset: v.preset,
        out: resolve(v.out),
        ...(v.type ? { type: v.type } : {}),
        ...(v.vocab ? { vocab: v.vocab } : {}),
        ...(seed !== undefined ? { seed } : {}),
        ...(threads !== undefined ? { threads } : {}),
        ...(layers !== undefined ? { layers } : {}),
        onProgress: (done, total) => {
            progress ??= createProgress({ label: `writing ${v.preset}`, total, unit: "bytes" });
            progress.update(done);
        },
    });
    progress?.done();
    process.stdout.write(`${r.path}\n  ${(r.params / 1e6).toFixed(1)}M params, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, sha256 ${r.sha256}, ${r.seconds.toFixed(1)} s\n`);
    return ExitCode.pass;
}
async function runBuildCommand(argv) {
    const { values: v } = parseFlags("server build", argv, {
        backend: { type: "string" },
        jobs: { type: "string" },
        "cmake-flag": { type: "string", multiple: true },
        force: { type: "boolean" },
        "print-path": { type: "boolean" },
        source: { type: "string" },
        "source-tag": { type: "string" },
    });
    if (v.help)
        return help(HELP);
    const backend = oneOf(v.backend, "--backend", ["auto", "cpu", "cuda"]);
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
        process.stderr.write(r.cached
            ? `llama-server (${r.plan.backend}) is cached: ${r.plan.dir}\n`
            : `built llama-server (${r.plan.backend}) into ${r.plan.dir}\n`);
    }
    // The binary path is always the last line (and with --print-path the only one), so scripts can capture it.
    process.stdout.write(`${r.serverBin}\n`);
    return ExitCode.pass;
}

const COMMANDS = {
    run: runRunCommand,
    ab: runAbCommand,
    compare: runCompareCommand,
    "baseline update": runBaselineCommand,
    "model synth": runSynthCommand,
    "server build": runBuildCommand,
    validate: runValidateCommand,
};
/** Finds the (one- or two-word) subcommand and runs it. Returns the process exit code. */
async function runCli(argv) {
    const two = argv.slice(0, 2).join(" ");
    if (COMMANDS[two])
        return COMMANDS[two](argv.slice(2));
    const one = argv[0] ?? "";
    if (COMMANDS[one])
        return COMMANDS[one](argv.slice(1));
    // A command group asked for help (`tokengate model --help`): its subcommands, from the same table.
    const group = Object.keys(COMMANDS).filter((c) => c.startsWith(`${one} `));
    if (group.length > 0 && (argv[1] === undefined || argv[1] === "--help" || argv[1] === "-h")) {
        const list = group.map((c) => `tokengate ${c}`).join(", ");
        if (argv[1] === undefined) {
            process.stderr.write(`tokengate ${one}: which subcommand? ${list} (see \`tokengate ${group[0]} --help\`)\n`);
            return ExitCode.badInput;
        }
        process.stdout.write(`tokengate ${one}: ${list} (see \`tokengate ${group[0]} --help\`)\n`);
        return ExitCode.pass;
    }
    if (one === "" || one === "help" || one === "--help" || one === "-h") {
        process.stdout.write(HELP);
        return ExitCode.pass;
    }
    if (one === "--version" || one === "-v") {
        const { packageInfo } = await import('./chunks/pipeline-C5nEdgzE.js').then(function (n) { return n.H; });
        process.stdout.write(`${packageInfo().version}\n`);
        return ExitCode.pass;
    }
    process.stderr.write(`tokengate: unknown command "${argv.slice(0, 2).join(" ")}"\n\n${HELP}`);
    return ExitCode.badInput;
}

/**
 * tokengate stops when the process that started it is gone. `npx tokengate run` is npx -> `sh -c tokengate ...` ->
 * node tokengate; SIGTERM to npx (timeout(1) on the wrapper, a CI runner) is relayed to the shell, which dies of it,
 * and tokengate (with its llama-server) was left running under pid 1 until the run ended (seen here, npm 11.19).
 *
 * Why polling the parent pid: nothing else works for a node process. The kernel's parent-death signal
 * (PR_SET_PDEATHSIG) cannot be set on oneself from JavaScript, and re-executing tokengate under setpriv would add a
 * process in front of every run. `process.ppid` asks the kernel each time (getppid), so a 1 s poll notices within a
 * second; an orphan's new parent is pid 1 or a subreaper (systemd --user, a container's init), so the rule is "the
 * parent changed", not "the parent is 1".
 *
 * What happens then: tokengate sends itself SIGTERM, so a vanished parent takes the same path as SIGTERM: the hooks of
 * src/util/children.ts stop the servers and exit with 143, and whatever else listens for SIGTERM runs too.
 *
 * Deliberately detached runs (`setsid tokengate ...`, `tokengate ... &` from a shell that then exits) would stop too:
 * TOKENGATE_OUTLIVE_PARENT=1 turns the watch off, and the message says so.
 *
 * Not covered: SIGKILL to npx itself leaves its `sh -c` alive and still waiting on tokengate, so tokengate's parent
 * does not change; the run goes on to its end (its servers stay tied to tokengate, src/util/tied-spawn.ts).
 */
const OUTLIVE_PARENT_ENV = "TOKENGATE_OUTLIVE_PARENT";
/** Starts the watch (an unref'd timer: it never keeps tokengate alive). No-op with TOKENGATE_OUTLIVE_PARENT=1. */
function watchParent(opts = {}) {
    const env = opts.env ?? process.env;
    if (env[OUTLIVE_PARENT_ENV] === "1")
        return { stop() { } };
    const parent = process.ppid;
    const onGone = opts.onGone ??
        ((was, now) => process.stderr.write(`tokengate: the process that started it (pid ${was}) is gone (parent now pid ${now}); stopping the run as on SIGTERM (set ${OUTLIVE_PARENT_ENV}=1 to keep running detached)\n`));
    const timer = setInterval(() => {
        const now = process.ppid;
        if (now === parent)
            return;
        clearInterval(timer);
        onGone(parent, now);
        process.kill(process.pid, "SIGTERM");
    }, opts.intervalMs ?? 1000);
    timer.unref();
    return { stop: () => clearInterval(timer) };
}

// Entry of the `tokengate` command: parse, run, map the outcome to an exit code. The one failure boundary of the CLI.
async function main() {
    // A run does not outlive the process that started it (npx's shell, a CI step): see util/parent-watch.ts.
    watchParent();
    let code;
    try {
        code = await runCli(process.argv.slice(2));
    }
    catch (e) {
        if (isTokengateError(e)) {
            process.stderr.write(`tokengate: ${redact(e.userMessage())}\n`);
            code = e.exitCode;
        }
        else {
            // A bug in tokengate, not bad input: say so, with the stack, so it can be reported.
            process.stderr.write(`tokengate: internal error (please report): ${redact(e?.stack ?? String(e))}\n`);
            code = ExitCode.couldNotRun;
        }
    }
    await stopAllChildren();
    // An interrupted run ends with the signal's conventional code, whatever it wrote (util/children.ts onInterrupt).
    const signal = interruptSignal();
    process.exitCode = signal ? interruptExitCode(signal) : code;
}
void main();
