/**
 * llama-server's host-memory prompt cache (--cache-ram) on real H200 runs (docs/runs/h200-prompt-cache, one lease, a 7B
 * q4_0 model; the same suite with the server's defaults, with --cache-ram 0, with --no-cache-idle-slots, then the
 * defaults again). The files are what docs/performance.md cites; this checks the figures there and that the analysis
 * turns the measured gap into the --cache-ram 0 experiment, and stops suggesting it once the flag is set.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadResults } from "../../src/analysis/baseline.js";
import { analyzeRun } from "../../src/analysis/recommendations.js";
import type { Results } from "../../src/measure/results.js";

const dir = fileURLToPath(new URL("../../docs/runs/h200-prompt-cache/", import.meta.url));
const load = (name: string) => loadResults(`${dir}${name}.json`);

const ttftP50 = (r: Results, test: string, scenario: string) =>
  r.tests.find((t) => t.name === test)!.scenarios.find((s) => s.name === scenario)!.metrics.ttft_ms!.summary.p50!;
const outputTokPerS = (r: Results) =>
  r.tests.find((t) => t.name === "throughput")!.metrics.output_tokens_per_s!.summary.p50!;
const gap = (r: Results, test: string) => r.tests.find((t) => t.name === test)!.crossCheck!.ttftMinusServerPromptMsP50!;

describe("llama-server's prompt cache on the H200 (real runs)", () => {
  it("costs TTFT outside prompt_ms and throughput, in both default runs; --cache-ram 0 removes it", async () => {
    const off = await load("noram");
    for (const name of ["default", "default2"]) {
      const on = await load(name);
      expect(on.environment.target.serverFlags).not.toContain("--cache-ram");
      // One request at a time: the time before the prompt starts grows with the KV cache the slot held.
      expect(ttftP50(on, "latency", "prompt_256") / ttftP50(off, "latency", "prompt_256")).toBeGreaterThan(3);
      expect(ttftP50(on, "latency", "prompt_2048") / ttftP50(off, "latency", "prompt_2048")).toBeGreaterThan(3);
      expect(gap(on, "latency")).toBeGreaterThan(100);
      // 8 concurrent: TTFT several times higher and about a third of the output rate.
      expect(ttftP50(on, "throughput", "concurrency_8") / ttftP50(off, "throughput", "concurrency_8")).toBeGreaterThan(
        4,
      );
      expect(outputTokPerS(on) / outputTokPerS(off)).toBeLessThan(0.4);
    }
    expect(off.environment.target.serverFlags).toEqual(expect.arrayContaining(["--cache-ram", "0"]));
    expect(gap(off, "latency")).toBeLessThan(5);
    // The server's own prompt rate is the same either way: the cost is outside prompt processing.
    const on = await load("default");
    const rate = (r: Results) => r.tests.find((t) => t.name === "latency")!.server!.rates.promptTokensPerS!;
    expect(rate(on) / rate(off)).toBeGreaterThan(0.9);
    expect(rate(on) / rate(off)).toBeLessThan(1.1);
  });

  it("recommends --cache-ram 0 from the default run's numbers, and not once it is set", async () => {
    const on = analyzeRun(await load("default"));
    const rec = on.recommendations.find((r) => r.flags?.join(" ") === "--cache-ram 0");
    expect(rec?.knob).toBe("prompt-cache");
    expect(rec?.action).toMatch(/now 8192 MiB, the default/);
    expect(rec?.tests).toEqual(expect.arrayContaining(["latency", "throughput"]));
    expect(rec?.evidence.join("\n")).toMatch(/before prompt processing starts/);

    const off = analyzeRun(await load("noram"));
    expect(off.recommendations.some((r) => r.flags?.includes("--cache-ram"))).toBe(false);

    // The runs of the noise pair were made by the pipeline with this recommendation in it: their stored analysis.
    const stored = async (name: string) => (await loadResults(`${dir}noise/${name}.json`)).analysis!.recommendations;
    expect((await stored("d1")).some((r) => r.flags?.join(" ") === "--cache-ram 0")).toBe(true);
    expect((await stored("n1")).some((r) => r.flags?.includes("--cache-ram"))).toBe(false);
  });

  it("adds run-to-run noise: 4 + 4 interleaved runs, TTFT varies several times more with the cache on", async () => {
    const runs = async (side: "d" | "n") =>
      Promise.all([1, 2, 3, 4].map((i) => loadResults(`${dir}noise/${side}${i}.json`)));
    const cv = (rs: Results[], test: string, metric: string) => {
      const v = rs.map((r) => r.tests.find((t) => t.name === test)!.metrics[metric]!.summary.p50!);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
      return sd / mean;
    };
    const on = await runs("d");
    const off = await runs("n");
    for (const r of off) expect(r.environment.target.serverFlags).toEqual(expect.arrayContaining(["--cache-ram", "0"]));
    for (const r of on) expect(r.environment.target.serverFlags).not.toContain("--cache-ram");
    for (const test of ["latency", "throughput"]) {
      expect(cv(on, test, "ttft_ms"), test).toBeGreaterThan(0.05);
      expect(cv(off, test, "ttft_ms"), test).toBeLessThan(0.02);
    }
    // Decoding is not where the cache acts: tpot is as steady either way.
    expect(cv(on, "latency", "tpot_ms")).toBeLessThan(0.02);
    expect(cv(off, "latency", "tpot_ms")).toBeLessThan(0.02);
  });
});
