import { describe, expect, it } from "vitest";
import { evaluateTarget, parseTarget, parseTargets } from "../../src/analysis/targets.js";
import { BadInputError } from "../../src/util/errors.js";
import { syntheticRun } from "./analysis-fixtures.js";

describe("parseTarget", () => {
  it.each([
    ["ttft_p95_ms < 200", { metric: "ttft_ms", stat: "p95", op: "<", threshold: 200 }],
    ["requests_per_s > 100", { metric: "requests_per_s", stat: "mean", op: ">", threshold: 100 }],
    ["e2e_p95_ms < 1000", { metric: "e2e_ms", stat: "p95", op: "<", threshold: 1000 }],
    ["error_rate < 0.01", { metric: "error_rate", stat: "mean", op: "<", threshold: 0.01 }],
    ["decode_tokens_per_s_p50 > 50", { metric: "decode_tokens_per_s", stat: "p50", op: ">", threshold: 50 }],
    ["ttft_ms.p99 <= 300", { metric: "ttft_ms", stat: "p99", op: "<=", threshold: 300 }],
    ["error_rate < 1%", { metric: "error_rate", stat: "mean", op: "<", threshold: 0.01 }],
    ["ttft_p95 < 0.2s", { metric: "ttft_s", stat: "p95", op: "<", threshold: 0.2 }],
    ["ttft_p95_ms < 0.2s", { metric: "ttft_ms", stat: "p95", op: "<", threshold: 200 }],
    ["max_concurrency >= 50", { metric: "max_concurrency", stat: "mean", op: ">=", threshold: 50 }],
    ["  TTFT_P50_MS   ≤   150 ", { metric: "ttft_ms", stat: "p50", op: "<=", threshold: 150 }],
  ])("reads %s", (expr, want) => {
    expect(parseTarget(expr)).toMatchObject(want);
  });

  it("keeps a target's test and warn margin", () => {
    expect(parseTarget({ expression: "ttft_p95_ms < 200", test: "latency", warnMargin: 0.2 })).toMatchObject({
      test: "latency",
      warnMargin: 0.2,
    });
  });

  it.each([
    ["ttft_p95_ms", "no comparison"],
    ["ttft_p95_ms == 200", "only <, <=, > and >= compare"],
    ["ttft_p95_ms < fast", "expected a metric name, an operator and a number"],
    ["ttft_p75_ms < 200", "p75 is not a statistic"],
    ["ttft_p50_p95_ms < 200", "more than one statistic"],
    ["< 200", "expected a metric name"],
  ])("refuses %j, naming the expression and giving examples", (expr, why) => {
    let err: unknown;
    try {
      parseTargets(["requests_per_s > 1", expr]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadInputError);
    const e = err as BadInputError;
    expect(e.subject).toBe("targets[1]");
    expect(e.message).toContain(JSON.stringify(expr.trim()));
    expect(e.message).toContain(why);
    expect(e.hint).toContain('"ttft_p95_ms < 200"');
    expect(e.hint).toContain('"requests_per_s > 100"');
  });

  it("refuses a warn margin outside [0, 1)", () => {
    expect(() => parseTarget({ expression: "ttft_p95_ms < 200", warnMargin: 1.5 })).toThrow(/warn margin/);
  });
});

describe("evaluateTarget", () => {
  const run = syntheticRun({ seed: 1, trials: 3, noise: 0.01 });
  const test = run.tests[0]!;
  const p95 = test.metrics.ttft_ms!.summary.p95;
  const rps = test.metrics.requests_per_s!.summary.mean;

  it("passes with the value, unit and target in the seed's console style", () => {
    const c = evaluateTarget(parseTarget(`ttft_p95_ms < ${Math.ceil(p95 * 2)}`), test, 0.1)!;
    expect(c.verdict).toBe("pass");
    expect(c.source).toBe("target");
    expect(c.metric).toBe("ttft_ms.p95");
    expect(c.value).toBe(p95);
    expect(c.reason).toMatch(/^ttft p95 \d+ ms \(target < \d+ ms\)$/);
  });

  it("fails when missed and says by how much", () => {
    const c = evaluateTarget(parseTarget(`ttft_p95_ms < ${p95 / 1.2}`), test, 0.1)!;
    expect(c.verdict).toBe("fail");
    expect(c.reason).toMatch(/misses by 20%$/);
  });

  it("warns within the margin, on either side of the comparison", () => {
    const lat = evaluateTarget(parseTarget(`ttft_p95_ms < ${p95 * 1.05}`), test, 0.1)!;
    expect(lat.verdict).toBe("warn");
    expect(lat.reason).toContain("within 10% of the target");
    const thr = evaluateTarget(parseTarget(`requests_per_s > ${rps * 0.95}`), test, 0.1)!;
    expect(thr.verdict).toBe("warn");
    expect(thr.reason).toMatch(/^requests\/s [\d.]+ req\/s \(target > [\d.]+ req\/s\)/);
    expect(evaluateTarget(parseTarget(`requests_per_s > ${rps * 0.95}`), test, 0)!.verdict).toBe("pass");
  });

  it("converts seconds to the metric's milliseconds", () => {
    const c = evaluateTarget(parseTarget("ttft_p95 < 10s"), test, 0.1)!;
    expect(c.verdict).toBe("pass");
    expect(c.reference).toBe(10_000);
    expect(c.reason).toContain("target < 10000 ms");
  });

  it("prints ratios as percents", () => {
    const c = evaluateTarget(parseTarget("error_rate < 1%"), test, 0.1)!;
    expect(c.verdict).toBe("pass");
    expect(c.reason).toBe("error rate 0% (target < 1%)");
  });

  it("skips tests that did not measure the metric, or another test's target", () => {
    expect(evaluateTarget(parseTarget("itl_p95_ms < 5"), test, 0.1)).toBeUndefined();
    expect(evaluateTarget(parseTarget({ expression: "ttft_p95_ms < 5", test: "other" }), test, 0.1)).toBeUndefined();
  });
});
