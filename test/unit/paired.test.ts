import { describe, expect, it } from "vitest";
import { detectableChange, pairedRunTest, pairsNeeded } from "../../src/analysis/paired.js";
import { judgeAb } from "../../src/analysis/verdict.js";
import { interleave, splitFlags } from "../../src/arms/arm.js";
import type { Results } from "../../src/measure/results.js";
import { renderMarkdown } from "../../src/report/markdown.js";
import { BadInputError } from "../../src/util/errors.js";
import { syntheticRun } from "./analysis-fixtures.js";

describe("the paired test of an A/B", () => {
  it("cancels drift that hits both arms of a pair alike", () => {
    // Each pair's machine is slower than the last (drift of 20% a pair), B is 10% slower than A within each pair.
    const a = [0, 1, 2, 3].map((i) => [100, 101, 99].map((v) => v * 1.2 ** i));
    const b = a.map((run) => run.map((v) => v * 1.1));
    const r = pairedRunTest(a, b, "greater")!;
    expect(r.pairs).toBe(4);
    expect(r.ratio).toBeCloseTo(1.1, 6);
    expect(r.sdDiff).toBeCloseTo(0, 6);
    expect(r.pValue).toBeLessThan(1e-6);
    // The same B is not worse in the other direction.
    expect(pairedRunTest(a, b, "less")!.pValue).toBeGreaterThan(0.99);
  });

  it("is undefined below two pairs and keeps pairs aligned when a run has no value", () => {
    expect(pairedRunTest([[1, 2]], [[1, 2]], "greater")).toBeUndefined();
    const r = pairedRunTest([[10], [], [10], [10]], [[11], [50], [11.5], [10.5]], "greater")!;
    expect(r.pairs).toBe(3);
    expect(r.ratio).toBeGreaterThan(1.05);
    expect(r.ratio).toBeLessThan(1.1);
  });

  it("detectable change: falls with the noise and the pairs; pairsNeeded inverts it", () => {
    const tight = detectableChange(0.01, 4, 0.05, 0.95);
    const loose = detectableChange(0.05, 4, 0.05, 0.95);
    expect(tight).toBeGreaterThan(0);
    expect(loose).toBeGreaterThan(tight * 4);
    expect(detectableChange(Number.NaN, 4, 0.05, 0.95)).toBe(Number.POSITIVE_INFINITY);
    const n = pairsNeeded(0.05, 0.1, 0.05, 0.95)!;
    expect(detectableChange(0.05 / Math.sqrt(n), n - 1, 0.05, 0.95)).toBeLessThanOrEqual(0.1);
    expect(detectableChange(0.05 / Math.sqrt(n - 1), n - 2, 0.05, 0.95)).toBeGreaterThan(0.1);
    expect(pairsNeeded(5, 0.01, 0.05, 0.95)).toBeUndefined();
  });

  it("interleaves A B B A so that each arm is first in half the pairs", () => {
    expect(interleave(3).join(" ")).toBe("A B B A A B");
  });

  it("splits flags on spaces and refuses shell syntax", () => {
    expect(splitFlags(" -t 2  --parallel 4 ", "--server-flags")).toEqual(["-t", "2", "--parallel", "4"]);
    expect(() => splitFlags("-t $(reboot)", "--server-flags")).toThrow(BadInputError);
  });
});

describe("judgeAb", () => {
  const pairsOf = (slowdown: number, n = 4): { a: Results[]; b: Results[] } => ({
    a: Array.from({ length: n }, (_, i) => syntheticRun({ seed: 10 + i, trials: 5, noise: 0.02 })),
    b: Array.from({ length: n }, (_, i) => syntheticRun({ seed: 50 + i, trials: 5, noise: 0.02, slowdown })),
  });

  it("fails a real 20% slowdown, says what changed, and states what each pass was worth", () => {
    const { a, b } = pairsOf(0.2);
    for (const r of b) r.environment.target.serverFlags = [...r.environment.target.serverFlags, "--threads", "1"];
    const v = judgeAb({ a, b });
    expect(v.overall).toBe("fail");
    expect(v.changes?.map((c) => `${c.label} ${c.baseline} -> ${c.run}`)).toEqual(["--threads 8 -> 1"]);
    const failing = v.checks.find((c) => c.verdict === "fail" && c.source === "baseline")!;
    expect(failing.comparison?.pairs).toBe(4);
    expect(failing.reason).toMatch(/\(4 pairs, 20 vs 20 trials, pair noise/);
  });

  it("passes an A/A, each check saying the smallest change it would have caught", () => {
    const { a, b } = pairsOf(0);
    const v = judgeAb({ a, b });
    expect(v.overall).toBe("pass");
    const ttft = v.checks.find((c) => c.metric === "ttft_ms.p50")!;
    expect(ttft.reason).toMatch(/no significant change.*would have caught >= \d/);
    expect(ttft.comparison?.detectable).toBeGreaterThan(0);
    expect(v.changes).toEqual([]);
  });

  it("renders What changed escaped in report.md", () => {
    const { a, b } = pairsOf(0, 2);
    b[0]!.environment.target.build = "b6100 <img src=x> **bold**";
    const results = { ...b[0]!, verdict: judgeAb({ a, b }) };
    const md = renderMarkdown(results);
    const line = md.split("\n").find((l) => l.startsWith("**What changed:**"))!;
    expect(line).toMatch(/^\*\*What changed:\*\* llama\.cpp build b1\\?-80fb11a → b6100 /);
    expect(line).not.toContain("<img");
    expect(line).not.toContain("**bold**");
  });
});
