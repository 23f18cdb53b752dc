import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluateTarget, parseTarget } from "../../src/analysis/targets.js";
import { StreamClient } from "../../src/client/stream-client.js";
import { maxLoadTestSchema, rampTestSchema, requestSchema } from "../../src/config/suite-schema.js";
import { nowNs } from "../../src/measure/clock.js";
import type { RequestRecord } from "../../src/measure/record.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import { runPipeline } from "../../src/pipeline.js";
import { renderLoadSections } from "../../src/report/load-report.js";
import type { TestContext } from "../../src/suite/context.js";
import type { StepDigest } from "../../src/suite/load-common.js";
import { runMaxLoadTest, type SearchRecord } from "../../src/suite/max-load.js";
import {
  type ProbeReset,
  type ProbeResetOutcome,
  probeResetFor,
  summarizeResets,
} from "../../src/suite/probe-reset.js";
import { runRampTest } from "../../src/suite/ramp.js";
import { createInProcessTarget } from "../../src/target/in-process/target.js";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import { freePort } from "../../src/target/port.js";
import type { Endpoint, Target } from "../../src/target/types.js";
import { createRng } from "../../src/util/rng.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

/**
 * Probes that do not inherit state: a real llama-server (2 slots, tiny synthetic model) with the run's ProbeReset
 * wrapped so the test reads GET /slots itself just before and just after every reset. Before a reset the slots hold
 * the previous step's prompt tokens; after it, at the probe's start, every slot is idle and empty. And a server that
 * really gets slower during a search (another client starts loading it before the repeat) makes the search report
 * drift instead of a boundary. Steps are short (1.5 s) and loads small; no speed is asserted.
 */
const MAX_TOKENS = 48;
let target: Target;
let endpoint: Endpoint;
let client: StreamClient;
let medianMs: number;

interface SlotView {
  id: number;
  is_processing: boolean;
  n_prompt_tokens?: number;
}

async function slots(ep: Endpoint): Promise<SlotView[]> {
  const r = await request(`${ep.baseUrl}/slots`);
  expect(r.statusCode).toBe(200);
  return (await r.body.json()) as SlotView[];
}

interface Seen {
  before: SlotView[];
  after: SlotView[];
  outcome: ProbeResetOutcome;
  startNs: number;
  endNs: number;
}

/** The run's reset for llama-server, watched: /slots before and after each call, and when it ran. */
function watched(inner: ProbeReset, onReset?: (n: number) => void | Promise<void>): ProbeReset & { seen: Seen[] } {
  const seen: Seen[] = [];
  return {
    method: inner.method,
    canReset: inner.canReset,
    seen,
    async beforeProbe(ep, signal) {
      const startNs = nowNs();
      const before = await slots(ep);
      const outcome = await inner.beforeProbe(ep, signal);
      const after = await slots(ep);
      seen.push({ before, after, outcome, startNs, endNs: nowNs() });
      await onReset?.(seen.length);
      return outcome;
    },
  };
}

function ctx(testName: string, probeReset: ProbeReset, sink = new RecordSink()): TestContext {
  return {
    testName,
    endpoint,
    client,
    sink,
    request: requestSchema.parse({ maxTokens: MAX_TOKENS }),
    rng: createRng(3),
    signal: new AbortController().signal,
    probeReset,
  };
}

/** Records of a test, kept in memory (the sink's own writer is a file, unused here). */
function recordingSink(): RecordSink & { records: RequestRecord[] } {
  const sink = new RecordSink() as RecordSink & { records: RequestRecord[] };
  sink.records = [];
  const write = sink.write.bind(sink);
  sink.write = (r: RequestRecord) => {
    sink.records.push(r);
    write(r);
  };
  return sink;
}

beforeAll(async () => {
  target = createLlamaServerTarget({
    model: await tinyModel(),
    serverBin: await findLlamaServerForTests(),
    threads: 1,
    serverFlags: ["--parallel", "2", "-c", "1024"],
  });
  endpoint = await target.start();
  client = new StreamClient(endpoint, { stallTimeoutMs: 60_000 });
  const e2e: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await client.send(
      {
        api: "openai-chat",
        prompt: `calibration ${i}`,
        maxTokens: MAX_TOKENS,
        ignoreEos: true,
        temperature: 0,
        cachePrompt: false,
      },
      { id: i, test: "calibrate", scenario: "c", trial: 0, measured: true },
    );
    expect(r.ok).toBe(true);
    e2e.push((r.endNs - r.startNs) / 1e6);
  }
  e2e.sort((a, b) => a - b);
  medianMs = e2e[2]!;
});

afterAll(async () => {
  await client?.close();
  await target?.stop();
});

const shape = { stepDurationS: 1.5, stepWarmupS: 0.3, drainTimeoutS: 20, promptTokens: 24 };

describe("probe resets against a real llama-server (2 slots)", () => {
  it("ramp: every step starts after a reset that erased the previous step's slots, with all slots idle and empty", async () => {
    const reset = watched(probeResetFor("llama-server"));
    const sink = recordingSink();
    const test = rampTestSchema.parse({ kind: "ramp", ...shape, steps: [1, 2, 4] });
    const result = await runRampTest(ctx("ramp", reset, sink), test, 1);
    const steps = result.extra!.steps as StepDigest[];
    expect(steps.map((s) => s.load)).toEqual([1, 2, 4]);
    // One reset per step, in order, recorded in each step's digest.
    expect(reset.seen).toHaveLength(3);
    for (const [i, s] of steps.entries()) {
      const seen = reset.seen[i]!;
      expect(s.reset).toEqual(seen.outcome);
      expect(s.reset).toMatchObject({ reset: true, idle: true, slots: 2 });
      // At the probe's start (read by the test, after the reset): no slot busy, no slot holding prompt tokens.
      expect(seen.after).toHaveLength(2);
      for (const slot of seen.after) {
        expect(slot.is_processing).toBe(false);
        expect(slot.n_prompt_tokens ?? 0).toBe(0);
      }
      // The step's requests all started after its reset ended, and the previous step's all ended before it began.
      const own = sink.records.filter((r) => r.scenario === s.label);
      expect(own.length).toBeGreaterThan(0);
      expect(Math.min(...own.map((r) => r.startNs))).toBeGreaterThanOrEqual(seen.endNs);
      if (i > 0) {
        const prev = sink.records.filter((r) => r.scenario === steps[i - 1]!.label);
        expect(Math.max(...prev.map((r) => r.endNs))).toBeLessThanOrEqual(seen.startNs);
        // What the reset removed: the previous step left prompt tokens in its slots, and the erase counted them.
        const left = seen.before.reduce((n, sl) => n + (sl.n_prompt_tokens ?? 0), 0);
        expect(left).toBeGreaterThan(0);
        expect(seen.outcome.erasedTokens).toBe(left);
      }
    }
    expect(result.extra!.stateReset).toMatchObject({ canReset: true, probes: 3, reset: 3, notIdle: 0, idleUnknown: 0 });
    expect(renderLoadSections(result).join("\n")).toContain(
      "Server state between probes: reset before each of the 3 probes",
    );
  });

  it("max-load: a server that gets slower before the repeat (another client loads it) reports drift, not a boundary", async () => {
    // Generous SLO (the search passes at its only load); the repeat runs while four extra streams share the two slots.
    const background = new AbortController();
    const extra: Promise<unknown>[] = [];
    const startBackground = () => {
      for (let u = 0; u < 4; u++) {
        extra.push(
          (async () => {
            for (let i = 0; !background.signal.aborted; i++) {
              await client.send(
                {
                  api: "openai-chat",
                  prompt: `other client ${u} ${i}`,
                  maxTokens: 256,
                  ignoreEos: true,
                  temperature: 0,
                  cachePrompt: false,
                },
                { id: 10_000 + u * 1000 + i, test: "background", scenario: "bg", trial: 0, measured: false },
                background.signal,
              );
            }
          })(),
        );
      }
    };
    // After the first probe's reset... the second reset is the repeat's: start the other client once it is done.
    const reset = watched(probeResetFor("llama-server"), (n) => {
      if (n === 2) startBackground();
    });
    const test = maxLoadTestSchema.parse({
      kind: "max-load",
      ...shape,
      slo: { e2eMs: Math.round(50 * medianMs), percentile: 50, maxErrorRate: 0.5 },
      start: 2,
      max: 2,
      tolerance: 0.1,
    });
    const result = await runMaxLoadTest(ctx("max-load", reset), test, 1).finally(async () => {
      background.abort();
      await Promise.allSettled(extra);
    });
    const search = (result.extra!.searches as SearchRecord[])[0]!;
    const steps = result.extra!.steps as StepDigest[];
    expect(steps.map((s) => [s.load, s.phase])).toEqual([
      [2, "double"],
      [2, "confirm"],
    ]);
    expect(reset.seen).toHaveLength(2);
    expect(reset.seen[0]!.outcome).toMatchObject({ reset: true, idle: true });
    // The repeat really was slower: the same load took several times longer with the other client on the server.
    expect(steps[1]!.e2eMs!.p50).toBeGreaterThan(1.5 * steps[0]!.e2eMs!.p50);
    expect(search.end).toBe("drifted");
    expect(search.maxPassing).toBeUndefined();
    expect(search.drift!.load).toBe(2);
    expect(search.drift!.first).toMatchObject({ label: "concurrency_2", phase: "double" });
    expect(search.drift!.repeat).toMatchObject({ label: "concurrency_2_repeat1", phase: "confirm" });
    expect(search.drift!.first.slo).toMatch(/e2e p50 \d+ ms/);
    expect(search.drift!.repeat.slo).toMatch(/e2e p50 \d+ ms/);
    expect(search.drift!.repeat.ratio).toBeGreaterThan(search.drift!.first.ratio);
    // No sustainable value from a drifted search (0 would read as a collapse to a baseline comparison).
    // The metric has no value (NaN): a target on it warns "no value measured" instead of failing or being a bad suite.
    expect(result.metrics.max_sustainable_concurrency!.summary.mean).toBeNaN();
    expect(evaluateTarget(parseTarget("max_sustainable_concurrency >= 1", "targets[0]"), result, 0.05)).toMatchObject({
      verdict: "warn",
      reason: expect.stringContaining("no value measured"),
    });
    const md = renderLoadSections(result).join("\n");
    expect(md).toContain("No maximum sustainable concurrency: the server's behaviour drifted during the search.");
  });

  it("a server that stays busy: the wait ends at its bound and says what it waited for", async () => {
    // Four streams looping on two slots keep both slots processing (a request is always queued for a freed slot).
    const background = new AbortController();
    const loops = Array.from({ length: 4 }, async (_, u) => {
      for (let i = 0; !background.signal.aborted; i++) {
        await client.send(
          {
            api: "openai-chat",
            prompt: `busy ${u} ${i}`,
            maxTokens: 256,
            ignoreEos: true,
            temperature: 0,
            cachePrompt: false,
          },
          { id: 20_000 + u * 1000 + i, test: "busy", scenario: "bg", trial: 0, measured: false },
          background.signal,
        );
      }
    });
    try {
      // Both slots busy before the probe would start.
      for (let i = 0; (await slots(endpoint)).some((s) => !s.is_processing); i++) {
        if (i > 100) throw new Error("the background load never filled both slots");
        await sleep(20);
      }
      const o = await probeResetFor("llama-server", { idleTimeoutMs: 500 }).beforeProbe(
        endpoint,
        new AbortController().signal,
      );
      expect(o.idle).toBe(false);
      expect(o.detail).toMatch(
        /^still busy after 0\.5 s of waiting for idle: [12] of 2 slots processing \(GET \/slots\); /,
      );
      expect(o.detail).toMatch(/not idle at the probe start: [12] of 2 slots processing/);
    } finally {
      background.abort();
      await Promise.allSettled(loops);
    }
  });

  it("a llama-server without /slots (--no-slots): waits for idle from /metrics and says it could not reset", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tokengate-probe-reset-"));
    const plain = createLlamaServerTarget({
      model: await tinyModel(),
      serverBin: await findLlamaServerForTests(),
      threads: 1,
      serverFlags: ["--no-slots"],
      logFile: join(dir, "server.log"),
    });
    try {
      const ep = await plain.start();
      const o = await probeResetFor("llama-server").beforeProbe(ep, new AbortController().signal);
      expect(o.reset).toBe(false);
      expect(o.idle).toBe(true);
      expect(o.detail).toMatch(/^not reset: GET \/slots is off \(--no-slots\)/);
      expect(o.detail).toContain("requests_processing 0");
      // The target passed an empty temp --slot-save-path (slot erase needs one), not recorded, and removes it at stop.
      const slotDir = /--slot-save-path (\S+)/.exec(readFileSync(join(dir, "server.log"), "utf8"))?.[1];
      expect(slotDir).toMatch(/tokengate-slot-save-/);
      expect(existsSync(slotDir!)).toBe(true);
      expect((await plain.fingerprint()).serverFlags).not.toContain("--slot-save-path");
      await plain.stop();
      expect(existsSync(slotDir!)).toBe(false);
    } finally {
      await plain.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("probe resets against the in-process target", () => {
  it("waits until its scheduler is idle and says its state was not reset", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tokengate-probe-reset-ip-"));
    const t = createInProcessTarget({
      modelPath: await tinyModel(),
      threads: 1,
      sequences: 2,
      contextSize: 512,
      logFile: join(dir, "in-process.log"),
    });
    try {
      const ep = await t.start();
      const reset = probeResetFor("in-process");
      const o = await reset.beforeProbe(ep, new AbortController().signal);
      expect(o).toMatchObject({ reset: false, idle: true });
      expect(o.detail).toBe(
        "not reset: the in-process target has no API to clear the KV state its sequences keep; scheduler idle",
      );
      expect(summarizeResets(reset, [o])).toMatchObject({ canReset: false, probes: 1, reset: 0, notIdle: 0 });
    } finally {
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("through the pipeline (the run's context provides the reset)", () => {
  const RAMP = `name: probe-reset
request: { maxTokens: 16, api: openai-chat }
tests:
  - kind: ramp
    steps: [1, 2]
    stepDurationS: 1
    stepWarmupS: 0.2
    drainTimeoutS: 10
    promptTokens: 16
`;
  const dir = mkdtempSync(join(tmpdir(), "tokengate-probe-reset-pipeline-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const suiteFile = join(dir, "ramp.yml");
  writeFileSync(suiteFile, RAMP);

  it("llama-server target: every step of a ramp starts after a slot erase", async () => {
    const out = join(dir, "llama");
    const outcome = await runPipeline(
      {
        suiteFile,
        target: "llama-server",
        modelPath: await tinyModel(),
        serverBin: await findLlamaServerForTests(),
        outDir: out,
        quiet: true,
      },
      { log: () => {} },
    );
    const ramp = outcome.results.tests[0]!;
    expect(ramp.extra!.stateReset).toMatchObject({ canReset: true, probes: 2, reset: 2, notIdle: 0 });
    for (const s of ramp.extra!.steps as StepDigest[]) expect(s.reset).toMatchObject({ reset: true, idle: true });
  });

  it("an external llama-server started without --slot-save-path: idle is waited for, the reset refused and said", async () => {
    const port = await freePort();
    // Started here with argv (no shell), as a user would run it: no --slot-save-path, so slot actions answer 501.
    const child = spawn(
      await findLlamaServerForTests(),
      ["-m", await tinyModel(), "--host", "127.0.0.1", "--port", String(port), "-t", "1", "--metrics"],
      { stdio: "ignore" },
    );
    try {
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; ; i++) {
        const ok = await request(`${url}/health`)
          .then(async (r) => {
            await r.body.text();
            return r.statusCode === 200;
          })
          .catch(() => false);
        if (ok) break;
        if (i > 200) throw new Error("the external llama-server did not become healthy in 20 s");
        await sleep(100);
      }
      const outcome = await runPipeline(
        { suiteFile, target: "external", url, outDir: join(dir, "external"), quiet: true },
        { log: () => {} },
      );
      const ramp = outcome.results.tests[0]!;
      const summary = ramp.extra!.stateReset as Record<string, unknown>;
      expect(summary).toMatchObject({ canReset: true, probes: 2, reset: 0, notIdle: 0, idleUnknown: 0 });
      expect(summary.firstProblem).toMatch(
        /^not reset: erase failed for slot 0: HTTP 501 \(This server does not support slots action/,
      );
      expect(summary.firstProblem).toContain(
        "(llama-server refuses slot actions unless started with --slot-save-path)",
      );
      expect(summary.firstProblem).toContain("; all slots idle");
      expect(readFileSync(join(dir, "external", "report.md"), "utf8")).toContain(
        "⚠️ Server state between probes: **not reset** (erase failed for slot 0: HTTP 501",
      );
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  });
});
