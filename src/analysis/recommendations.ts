import type { Bottleneck, Recommendation, Results, RunAnalysis } from "../measure/results.js";
import {
  analyzeBottlenecks,
  type BottleneckAnalysis,
  batchingEfficiency,
  flagValue,
  type TestFacts,
} from "./bottleneck.js";
import { formatNumber, formatPercent } from "./format.js";

/**
 * What to try next, from the bottlenecks (src/analysis/bottleneck.ts). Pure. Each recommendation names the knob, the
 * concrete flags where there are some (llama-server b1-80fb11a spellings: `--parallel`, `-b/-ub`, `-ctk/-ctv`, `-fa`,
 * `--cache-reuse`, `--spec-type`, `-t`, `-ngl`, `-c`), why, and the evidence it rests on. Recommendations are
 * experiments to run with tokengate, not promises: each changes one thing whose effect the next run measures.
 *
 * llama-server defaults assumed when a flag is not set: `-b 2048`, `-ub 512`, `-fa auto`, `-ctk/-ctv f16`.
 */

const DEFAULT_UBATCH = 512;
const DEFAULT_BATCH = 2048;

/** Model types whose weights can be made smaller with llama-quantize. */
const UNQUANTIZED = new Set(["f32", "f16", "bf16", "all_f32", "mostly_f16", "mostly_bf16"]);

const SEVERITY_RANK = { high: 0, medium: 1, low: 2 } as const;

/** Evidence lines kept per test when a recommendation merges several tests. */
const EVIDENCE_PER_TEST = 2;

/** Within a severity, the order a reviewer should try things in: cheapest and most likely first. */
const KNOB_ORDER: Recommendation["knob"][] = [
  "errors",
  "machine",
  "client",
  "context-size",
  "load",
  "parallel",
  "flash-attention",
  "threads",
  "gpu-offload",
  "batch-size",
  "prompt-cache",
  "quantization",
  "kv-cache-type",
  "speculative",
];

interface Draft extends Omit<Recommendation, "tests"> {
  test: string;
  severity: Bottleneck["severity"];
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

function num(v: string | undefined): number | undefined {
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

const f = formatNumber;

function recommendationsFor(b: Bottleneck, facts: TestFacts, all: TestFacts[]): Draft[] {
  const out: Draft[] = [];
  const add = (r: Omit<Draft, "test" | "severity">, severity: Bottleneck["severity"] = b.severity) =>
    out.push({ ...r, test: b.test, severity });
  const flags = facts.flags;
  const cpuOnly = !facts.gpu;
  // llama-server flags apply to tokengate's llama-server target and to an external server whose /metrics are
  // llama-server's; the in-process target (node-llama-cpp) has its own options; another server (vLLM, TGI) its own.
  const llamaFlags = facts.targetKind === "llama-server" || facts.server?.source === "llama-server";
  const inProcess = facts.targetKind === "in-process";

  const threadsAdvice = (why: string) => {
    // In-process threads are cores - 1 on purpose (src/target/in-process/options.ts: ggml's spinning threadpool).
    if (!cpuOnly || !llamaFlags) return;
    if (facts.threads !== undefined && facts.threads >= facts.cpuCount) return;
    add({
      knob: "threads",
      action: `try -t ${facts.cpuCount} (now ${facts.threads ?? "not set"})`,
      flags: ["-t", String(facts.cpuCount)],
      why,
      evidence: [...b.evidence, `${facts.cpuCount} CPU cores, no GPU in the fingerprint`],
    });
  };

  const gpuOffloadAdvice = () => {
    if (!facts.gpu || !llamaFlags) return;
    const ngl = num(flagValue(flags, ["-ngl", "--gpu-layers", "--n-gpu-layers"]));
    if (ngl === undefined || ngl >= 99) return;
    add({
      knob: "gpu-offload",
      action: `offload every layer to the GPU: -ngl 99 (now ${ngl})`,
      flags: ["-ngl", "99"],
      why: "layers left on the CPU run at CPU speed",
      evidence: b.evidence,
    });
  };

  // llama-server's host-memory prompt cache (--cache-ram, default 8192 MiB; b1-80fb11a, ggml-org/llama.cpp#16391)
  // saves an idle slot's KV cache to RAM when a new task takes the slot (the flag's help text), before the prompt
  // starts: outside prompt_ms, inside TTFT. Measured on an H200 with a 7B q4_0 model (docs/runs/h200-prompt-cache): +33 / +116 /
  // +890 ms TTFT p50 at 32 / 256 / 2048 prompt tokens one request at a time; at 8 concurrent TTFT p50 987-1159 ms
  // instead of 207 ms and 180-205 output tok/s instead of 560. --no-cache-idle-slots removed only part of it. Prompts
  // that never repeat get nothing back from that cache.
  const promptCacheRamAdvice = () => {
    if (!llamaFlags || inProcess) return;
    const ram = flagValue(flags, ["-cram", "--cache-ram"]);
    if (ram !== undefined && Number(ram) === 0) return;
    const hit = facts.server?.rates.promptCacheHitRatio;
    add({
      knob: "prompt-cache",
      action: `if prompts rarely repeat a prefix: try --cache-ram 0 (now ${
        ram ??
        (facts.targetKind === "external"
          ? "unknown: an external server's flags are not seen; llama-server's default is 8192 MiB"
          : "8192 MiB, the default")
      })`,
      flags: ["--cache-ram", "0"],
      why: "llama-server saves the KV cache of an idle slot to host RAM when a new request takes the slot, before its prompt starts; with large KV caches that work can take longer than the prompt itself",
      evidence: [
        ...b.evidence,
        ...(hit !== undefined ? [`prompt cache hit ratio in this test: ${formatPercent(hit)}`] : []),
      ],
    });
  };

  switch (b.kind) {
    case "aborted":
    case "errors": {
      const n = (k: keyof TestFacts["errors"]) => facts.errors[k] ?? 0;
      const hints: string[] = [];
      if (n("timeout") > 0)
        hints.push("timeouts: lower the load or add slots, and read the server log around the stall");
      if (n("http") > 0) hints.push("HTTP errors: the server log names them (exceed_context_size_error -> raise -c)");
      if (n("connect") > 0) hints.push("connection errors: the server refused or dropped connections (did it crash?)");
      if (n("stream") + n("parse") > 0)
        hints.push("broken streams: an error event mid-stream or malformed SSE (see the records)");
      if (b.kind === "aborted")
        hints.push("the test was aborted: the server log and records.ndjson show what happened");
      add({
        knob: "errors",
        action: hints.length ? hints.join("; ") : "read the server log for the failed requests",
        why: "failed requests make every other number less trustworthy",
        evidence: b.evidence,
      });
      break;
    }
    case "shortfall": {
      const slots = facts.slots ?? 1;
      const ctx = facts.ctxPerSlot;
      add({
        knob: "context-size",
        action:
          ctx !== undefined
            ? `raise the context: -c ${ctx * slots * 2} (now ${ctx} tokens per slot x ${slots} slots), or send ignore_eos for fixed-length outputs`
            : "raise the context (-c, shared by the --parallel slots) or send ignore_eos for fixed-length outputs",
        ...(ctx !== undefined ? { flags: ["-c", String(ctx * slots * 2)] } : {}),
        why: "a request stops early when its slot's context is full or the model emits an end token",
        evidence: b.evidence,
      });
      break;
    }
    case "drift":
      add({
        knob: "machine",
        action:
          "rerun where nothing else runs beside the job; if it drifts there too, the server slows over time at a steady load (thermal throttling, memory growth, a cache filling): read its log and /metrics over the test",
        why: "a boundary found while the server changed describes no single server",
        evidence: b.evidence,
      });
      break;
    case "busy-machine":
      add({
        knob: "machine",
        action:
          "rerun where nothing else runs beside the job (a dedicated or self-hosted runner), then compare; a baseline comparison never fails a run this busy",
        why: "latency measured beside other work includes that work's share of the CPUs",
        evidence: b.evidence,
      });
      break;
    case "client":
      add({
        knob: "client",
        action:
          "run the load generator on its own cores (a bigger runner, or the server on another machine) or lower its concurrency, then compare",
        why: "the numbers partly measure tokengate's own process",
        evidence: b.evidence,
      });
      break;
    case "underloaded":
      add({
        knob: "load",
        action: `raise the test's concurrency to at least the ${facts.slots ?? "server's"} slots to measure the server's capacity`,
        why: "a load that leaves slots idle measures itself",
        evidence: b.evidence,
      });
      break;
    case "speculative":
      add({
        knob: "speculative",
        action: "draft fewer tokens (--spec-draft-n-max 4) or use a draft model closer to the target model",
        flags: ["--spec-draft-n-max", "4"],
        why: "rejected drafts are work the target model verifies for nothing",
        evidence: b.evidence,
      });
      break;
    case "queueing": {
      if (!facts.waitsForSlot) promptCacheRamAdvice();
      if (!facts.waitsForSlot || facts.slots === undefined) break;
      if (inProcess) {
        const target = Math.max(facts.concurrency ?? facts.slots * 2, facts.slots + 1);
        add({
          knob: "parallel",
          action: `try target.sequences: ${target} in the suite (now ${facts.slots})`,
          why: "queued requests wait for a free sequence instead of being batched into the running decode",
          evidence: b.evidence,
        });
        break;
      }
      if (!llamaFlags) break;
      const target = Math.max(
        facts.concurrency !== undefined && facts.concurrency > facts.slots ? facts.concurrency : facts.slots * 2,
        facts.slots + 1,
      );
      const ctxFlags = facts.ctxPerSlot !== undefined ? ["-c", String(facts.ctxPerSlot * target)] : ([] as string[]);
      const evidence = [...b.evidence];
      const eff = batchingEfficiency(facts, all);
      if (eff) {
        evidence.push(eff.line);
        if (eff.ratio < 0.5)
          evidence.push(
            "batching already slows each stream a lot here: more slots raise throughput but also per-request latency",
          );
      }
      add({
        knob: "parallel",
        action:
          `try --parallel ${target} (now ${facts.slots})` +
          (facts.ctxPerSlot !== undefined
            ? ` with -c ${facts.ctxPerSlot * target} to keep ${facts.ctxPerSlot} tokens per slot`
            : ""),
        flags: ["--parallel", String(target), ...ctxFlags],
        why: "queued requests wait instead of being batched into the running decode",
        evidence,
      });
      if (!flagValue(flags, ["-ctk", "--cache-type-k"])) {
        add(
          {
            knob: "kv-cache-type",
            action: "if more slots do not fit in memory: -ctk q8_0 -ctv q8_0 -fa on (half the KV cache of f16)",
            flags: ["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"],
            why: "each slot needs its own KV cache; a quantized V cache needs flash attention",
            evidence: [`${facts.slots} slots now; ${target} suggested`],
          },
          "low",
        );
      }
      break;
    }
    case "prefill": {
      if (!llamaFlags) break;
      const fa = flagValue(flags, ["-fa", "--flash-attn"]);
      if (fa !== "on" && fa !== "1" && fa !== "true") {
        add({
          knob: "flash-attention",
          action: `try -fa on (now ${fa ?? "auto, the default"})`,
          flags: ["-fa", "on"],
          why: "flash attention cuts attention's memory traffic, most of all for long prompts",
          evidence: b.evidence,
        });
      }
      const ub = num(flagValue(flags, ["-ub", "--ubatch-size"])) ?? DEFAULT_UBATCH;
      const batch = num(flagValue(flags, ["-b", "--batch-size"])) ?? DEFAULT_BATCH;
      const prompt = facts.promptTokensMean ?? 0;
      if (prompt > ub || (facts.concurrency ?? 1) > 1) {
        const newUb = Math.min(4096, Math.max(ub * 2, nextPow2(prompt)));
        const newB = Math.max(batch, newUb);
        add({
          knob: "batch-size",
          action: `try -ub ${newUb} -b ${newB} (now -ub ${ub} -b ${batch})`,
          flags: ["-ub", String(newUb), "-b", String(newB)],
          why: "prompts are computed in physical batches of -ub tokens; larger ones use the hardware better (more so on GPUs)",
          evidence: b.evidence,
        });
      }
      const hit = facts.server?.rates.promptCacheHitRatio;
      if (!flagValue(flags, ["--cache-reuse"])) {
        add(
          {
            knob: "prompt-cache",
            action:
              "if real prompts share a prefix (system prompt, chat history): keep cache_prompt on and try --cache-reuse 256",
            flags: ["--cache-reuse", "256"],
            why: "cached prefix tokens skip prompt processing entirely",
            evidence: [
              ...b.evidence,
              ...(hit !== undefined ? [`prompt cache hit ratio in this test: ${formatPercent(hit)}`] : []),
            ],
          },
          "low",
        );
      }
      threadsAdvice("prompt processing on a CPU scales with threads up to the physical cores");
      gpuOffloadAdvice();
      break;
    }
    case "decode": {
      const q = facts.quantization;
      if (q !== undefined && (UNQUANTIZED.has(q) || q === "q8_0")) {
        const to = q === "q8_0" ? "Q4_K_M" : "q8_0 or Q4_K_M";
        add({
          knob: "quantization",
          action: `try a ${to} model (now ${q}; llama-quantize makes one from this file)`,
          why: "decoding reads every weight for each token: fewer bytes per weight decode faster (check quality separately)",
          evidence: b.evidence,
        });
      }
      if (!llamaFlags) break;
      if ((facts.server?.counters.draftTokens ?? 0) === 0) {
        add(
          {
            knob: "speculative",
            action:
              "try speculative decoding: a small draft model of the same family (-md draft.gguf) or --spec-type ngram-cache for repetitive output",
            why: "one target-model pass can then accept several tokens",
            evidence: b.evidence,
          },
          "low",
        );
      }
      if ((facts.promptTokensMean ?? 0) >= 2048 && !flagValue(flags, ["-ctk", "--cache-type-k"])) {
        add({
          knob: "kv-cache-type",
          action: "try -ctk q8_0 -ctv q8_0 -fa on",
          flags: ["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"],
          why: "with long contexts each token reads the whole KV cache: a q8_0 cache halves that traffic",
          evidence: [...b.evidence, `mean prompt ${f(facts.promptTokensMean ?? 0)} tokens`],
        });
      }
      threadsAdvice("decoding on a CPU is bound by memory bandwidth and threads up to the physical cores");
      gpuOffloadAdvice();
      break;
    }
  }
  return out;
}

/** Recommendations from an analysis, merged across tests (same knob and action), most important first. */
export function recommend(analysis: BottleneckAnalysis): Recommendation[] {
  const byTest = new Map(analysis.facts.map((x) => [x.test, x]));
  const drafts = analysis.bottlenecks.flatMap((b) => {
    const facts = byTest.get(b.test);
    return facts ? recommendationsFor(b, facts, analysis.facts) : [];
  });
  const merged = new Map<string, { rec: Recommendation; severity: Bottleneck["severity"] }>();
  const multi = analysis.facts.length > 1;
  for (const d of drafts) {
    const key = `${d.knob}\u0000${d.action}`;
    // A recommendation that several tests support keeps each test's strongest lines, not all of them.
    const evidence = d.evidence
      .slice(0, multi ? EVIDENCE_PER_TEST : undefined)
      .map((e) => (multi ? `${d.test}: ${e}` : e));
    const seen = merged.get(key);
    if (!seen) {
      const { test, severity, ...rest } = d;
      merged.set(key, { rec: { ...rest, evidence, tests: [test] }, severity });
      continue;
    }
    if (!seen.rec.tests.includes(d.test)) seen.rec.tests.push(d.test);
    for (const e of evidence) if (!seen.rec.evidence.includes(e)) seen.rec.evidence.push(e);
    if (SEVERITY_RANK[d.severity] < SEVERITY_RANK[seen.severity]) seen.severity = d.severity;
  }
  return [...merged.values()]
    .sort(
      (a, b) =>
        SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
        KNOB_ORDER.indexOf(a.rec.knob) - KNOB_ORDER.indexOf(b.rec.knob),
    )
    .map((x) => x.rec);
}

/** The whole analysis for `Results.analysis`: time splits, bottlenecks, recommendations. */
export function analyzeRun(results: Results): RunAnalysis {
  const analysis = analyzeBottlenecks(results);
  return {
    timeSplits: analysis.timeSplits,
    bottlenecks: analysis.bottlenecks,
    recommendations: recommend(analysis),
  };
}
