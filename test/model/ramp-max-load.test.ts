import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluateTarget, parseTarget } from "../../src/analysis/targets.js";
import { StreamClient } from "../../src/client/stream-client.js";
import { maxLoadTestSchema, rampTestSchema, requestSchema } from "../../src/config/suite-schema.js";
import { RecordSink } from "../../src/measure/record-sink.js";
import type { TestResult } from "../../src/measure/results.js";
import { renderLoadSections } from "../../src/report/load-report.js";
import type { TestContext } from "../../src/suite/context.js";
import type { StepDigest } from "../../src/suite/load-common.js";
import { DRIFT_TOLERANCE, ratioDifference, runMaxLoadTest, type SearchRecord } from "../../src/suite/max-load.js";
import { probeResetFor } from "../../src/suite/probe-reset.js";
import { runRampTest } from "../../src/suite/ramp.js";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import type { Endpoint, Target } from "../../src/target/types.js";
import { createRng } from "../../src/util/rng.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

/**
 * A real llama-server with two slots (`--parallel 2`) and a synthetic model: beyond two requests in flight, requests
 * queue in the server, so end-to-end latency at 8 users is about four times that at 2, and eight times at 16. The SLO
 * is set from the machine's own single-request latency (4x its median, judged on the step's median so a scheduling
 * hiccup of a busy shared machine does not decide a step), so the flip happens at a low concurrency on any machine.
 */
const MAX_TOKENS = 128;
let target: Target;
let endpoint: Endpoint;
let client: StreamClient;
let boundMs: number;

function ctx(testName: string): TestContext {
  return {
    testName,
    endpoint,
    client,
    sink: new RecordSink(),
    request: requestSchema.parse({ maxTokens: MAX_TOKENS }),
    rng: createRng(7),
    signal: new AbortController().signal,
    // As the pipeline does: every step starts on idle, erased slots.
    probeReset: probeResetFor("llama-server"),
  };
}

beforeAll(async () => {
  target = createLlamaServerTarget({
    model: await tinyModel(),
    serverBin: await findLlamaServerForTests(),
    // One thread: llama.cpp's worker threads spin on barriers, so on a busy 2-core machine two threads can stall each
    // other for many milliseconds (the step-to-step noise swamps the signal); one thread slows down only in proportion.
    threads: 1,
    serverFlags: ["--parallel", "2", "-c", "2048"],
  });
  endpoint = await target.start();
  client = new StreamClient(endpoint, { stallTimeoutMs: 60_000 });
  const e2e: number[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await client.send(
      {
        api: "openai-chat",
        prompt: `calibration ${i} the of and`,
        maxTokens: MAX_TOKENS,
        ignoreEos: true,
        temperature: 0,
        cachePrompt: false,
      },
      { id: i, test: "calibrate", scenario: "c", trial: 0, measured: true },
    );
    expect(r.ok).toBe(true);
    if (i > 1) e2e.push((r.endNs - r.startNs) / 1e6);
  }
  e2e.sort((a, b) => a - b);
  boundMs = Math.round(4 * e2e[Math.floor(e2e.length / 2)]!);
});

afterAll(async () => {
  await client?.close();
  await target?.stop();
});

const slo = () => ({ e2eMs: boundMs, percentile: 50, maxErrorRate: 0.05 });
const shape = { stepDurationS: 3, stepWarmupS: 0.5, drainTimeoutS: 20, promptTokens: 24 };

describe("load engine against a real llama-server (2 slots, tiny synthetic model)", () => {
  it("max-load: doubling and bisection return a boundary, with the SLO flipping between its two sides", async () => {
    const test = maxLoadTestSchema.parse({ kind: "max-load", ...shape, slo: slo(), start: 1, max: 64, tolerance: 0.1 });
    const result: TestResult = await runMaxLoadTest(ctx("max-load"), test, 1);
    const search = (result.extra!.searches as SearchRecord[])[0]!;
    const steps = result.extra!.steps as StepDigest[];
    expect(result.extra!.stateReset).toMatchObject({ probes: steps.length, reset: steps.length, notIdle: 0 });
    expect(search.probes.length).toBe(steps.length);

    if (search.end === "drifted") {
      // A busy shared machine can make the repeat disagree (DRIFT_TOLERANCE's comment has the measured spread): then
      // the search must give no boundary, and its record must be the two steps' own figures.
      const d = search.drift!;
      const first = steps[d.first.index]!;
      const repeat = steps[d.repeat.index]!;
      expect([first.load, repeat.load]).toEqual([d.load, d.load]);
      expect([first.label, repeat.label]).toEqual([d.first.label, d.repeat.label]);
      expect(ratioDifference(d.first.ratio, d.repeat.ratio)).toBeGreaterThan(DRIFT_TOLERANCE);
      expect(search.maxPassing).toBeUndefined();
      // The metric has no value (NaN): a target on it warns "no value measured" instead of failing or being a bad suite.
      expect(result.metrics.max_sustainable_concurrency!.summary.mean).toBeNaN();
      expect(evaluateTarget(parseTarget("max_sustainable_concurrency >= 1", "targets[0]"), result, 0.05)).toMatchObject(
        {
          verdict: "warn",
          reason: expect.stringContaining("no value measured"),
        },
      );
      expect(renderLoadSections(result).join("\n")).toContain("the server's behaviour drifted during the search");
      return;
    }
    expect(search.maxPassing).toBeGreaterThanOrEqual(1);
    expect(search.minFailing).toBeDefined();
    expect(search.minFailing! - search.maxPassing!).toBeLessThanOrEqual(search.precision);
    expect(result.metrics.max_sustainable_concurrency!.summary.mean).toBe(search.maxPassing);
    expect(search.probes.map((p) => p.phase)).toContain("double");

    // The steps on both sides of the boundary: the passing one within the bound, the failing one beyond it.
    const at = (load: number) => steps.filter((s) => s.load === load);
    const passing = at(search.maxPassing!).filter((s) => s.slo?.pass);
    const failing = at(search.minFailing!).filter((s) => !s.slo?.pass);
    expect(passing.length).toBeGreaterThanOrEqual(1);
    expect(failing.length).toBeGreaterThanOrEqual(1);
    for (const s of passing) expect(s.e2eMs!.p50).toBeLessThanOrEqual(boundMs);
    expect(Math.max(...failing.map((s) => s.e2eMs?.p50 ?? Number.POSITIVE_INFINITY))).toBeGreaterThan(boundMs);
    // Beyond two slots requests wait in the server: the failing side has more in flight than the server serves.
    expect(Math.max(...failing.map((s) => s.inFlight.mean))).toBeGreaterThan(2);
    if (search.confirmed) expect(search.probes.at(-1)).toMatchObject({ phase: "confirm", load: search.maxPassing });

    // Every probe is in the results as a scenario with its load, and in the report as a table row and a chart point.
    expect(result.scenarios.map((s) => s.params.concurrency)).toEqual(steps.map((s) => s.load));
    const md = renderLoadSections(result).join("\n");
    expect(md).toContain(`Maximum sustainable concurrency: ${search.maxPassing} users`);
    expect(md).toContain("xychart-beta");
    expect(md).toMatch(/Found in \*\*\d+ probes\*\*/);
  });

  it("ramp: per-step latency, TTFT, errors, throughput and goodput; stops after the step that misses the SLO", async () => {
    const test = rampTestSchema.parse({ kind: "ramp", ...shape, slo: slo(), steps: [1, 2, 4, 8, 16, 32, 64] });
    const result = await runRampTest(ctx("ramp"), test, 1);
    const steps = result.extra!.steps as StepDigest[];
    const stops = result.extra!.stoppedEarly as Array<{ afterStep: string; kind: string }>;

    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(steps.length).toBeLessThan(7);
    expect(result.extra!.stateReset).toMatchObject({ probes: steps.length, reset: steps.length, notIdle: 0 });
    expect(steps.map((s) => s.load)).toEqual([1, 2, 4, 8, 16, 32, 64].slice(0, steps.length));
    const last = steps.at(-1)!;
    expect(stops[0]!.afterStep).toBe(last.label);
    // Stopped on the SLO, or (earlier) on saturation: either way the last step is where the server gave out.
    if (stops[0]!.kind === "slo") expect(last.slo!.pass).toBe(false);
    else expect(last.saturation!.saturated).toBe(true);
    for (const s of steps) {
      expect(s.requests.attempted).toBeGreaterThan(0);
      expect(s.e2eMs!.p50).toBeLessThanOrEqual(s.e2eMs!.p95);
      expect(s.e2eMs!.p95).toBeLessThanOrEqual(s.e2eMs!.p99);
      expect(s.ttftMs!.mean).toBeGreaterThan(0);
      expect(s.ttftMs!.mean).toBeLessThan(s.e2eMs!.mean);
      expect(s.requestsPerS).toBeGreaterThan(0);
      expect(s.goodputRps).toBeLessThanOrEqual(s.requestsPerS + 1e-9);
      expect(s.errorRate).toBeLessThanOrEqual(1);
      expect(s.selfCheck.wallS).toBeGreaterThan(0);
    }
    // Either way latency rose into the last step (SLO: the previous step passed, this one did not; saturation: the
    // test requires it).
    expect(last.e2eMs!.p50).toBeGreaterThan(steps.at(-2)!.e2eMs!.p50);
    expect(result.metrics.goodput_rps).toBeDefined();
    expect(renderLoadSections(result).join("\n")).toContain("Stopped early after");
  });
});
