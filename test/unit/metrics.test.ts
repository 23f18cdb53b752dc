import { describe, expect, it } from "vitest";
import {
  decodeHistogram,
  encodeHistogram,
  histogramOf,
  summarize,
  valueAtPercentile,
} from "../../src/measure/histogram.js";
import { computeMetrics, countRequests, crossCheck, requestValues } from "../../src/measure/metrics.js";
import type { RequestRecord } from "../../src/measure/record.js";

const MS = 1e6;

function rec(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    id: 0,
    test: "t",
    scenario: "s",
    api: "openai-chat",
    trial: 0,
    intendedStartNs: 0,
    startNs: 0,
    firstByteNs: 5 * MS,
    firstTokenNs: 10 * MS,
    endNs: 110 * MS,
    contentEventNs: [10 * MS, 35 * MS, 60 * MS, 85 * MS, 110 * MS],
    measured: true,
    outputTokens: 5,
    outputTokensSource: "usage",
    promptTokens: 20,
    promptTokensSource: "usage",
    requestedOutputTokens: 5,
    status: 200,
    ok: true,
    ...over,
  };
}

describe("per-request metrics (ARCHITECTURE.md definitions)", () => {
  it("computes ttft, ttfb, e2e, tpot, itl and decode rate", () => {
    const v = requestValues(rec());
    expect(v.ttft_ms).toBe(10);
    expect(v.ttfb_ms).toBe(5);
    expect(v.e2e_ms).toBe(110);
    // tpot = (e2e - ttft) / (out - 1) = 100 / 4
    expect(v.tpot_ms).toBe(25);
    expect(v.itl_ms).toEqual([25, 25, 25, 25]);
    // decode = (out - 1) / ((e2e - ttft) / 1000) = 4 / 0.1
    expect(v.decode_tokens_per_s).toBeCloseTo(40, 10);
    expect(v.e2e_tokens_per_s).toBeCloseTo(5 / 0.11, 10);
  });

  it("has no tpot or decode rate for a single output token, and nothing for a failed request", () => {
    const one = requestValues(rec({ outputTokens: 1, contentEventNs: [10 * MS], endNs: 12 * MS }));
    expect(one.tpot_ms).toBeUndefined();
    expect(one.decode_tokens_per_s).toBeUndefined();
    expect(one.itl_ms).toBeUndefined();
    expect(requestValues(rec({ ok: false, errorClass: "http" }))).toEqual({});
  });

  it("counts requests by outcome, error class and shortfall", () => {
    const c = countRequests([
      rec(),
      rec({ ok: false, errorClass: "timeout" }),
      rec({ ok: false, errorClass: "timeout" }),
      rec({ shortfall: 2 }),
    ]);
    expect(c).toEqual({ attempted: 4, succeeded: 2, failed: 2, errors: { timeout: 2 }, shortfalls: 1 });
  });
});

describe("aggregate metrics", () => {
  it("uses completed requests over the measured window, per trial", () => {
    // Two requests overlapping in [0, 200 ms]; one failure that still counts as attempted.
    const records = [
      rec({ startNs: 0, endNs: 100 * MS, firstTokenNs: 10 * MS }),
      rec({ startNs: 50 * MS, endNs: 200 * MS, firstTokenNs: 60 * MS, contentEventNs: [60 * MS] }),
      rec({ startNs: 20 * MS, endNs: 30 * MS, ok: false, errorClass: "http" }),
    ];
    const m = computeMetrics([{ records }]);
    expect(m.requests_per_s!.summary.mean).toBeCloseTo(2 / 0.2, 10);
    expect(m.output_tokens_per_s!.summary.mean).toBeCloseTo(10 / 0.2, 10);
    expect(m.error_rate!.summary.mean).toBeCloseTo(1 / 3, 10);
    expect(m.requests_per_s!.histogram).toBeUndefined();
    expect(m.ttft_ms!.histogram).toBeTypeOf("string");
  });

  it("keeps one summary per trial and summarizes aggregates over trials", () => {
    const t0 = [rec({ trial: 0, endNs: 100 * MS })];
    const t1 = [rec({ trial: 1, endNs: 200 * MS })];
    const m = computeMetrics([{ records: t0 }, { records: t1 }]);
    expect(m.e2e_ms!.trials.map((t) => t.p50)).toEqual([100, 200]);
    expect(m.requests_per_s!.trials.map((t) => t.mean)).toEqual([10, 5]);
    expect(m.requests_per_s!.summary.mean).toBeCloseTo(7.5, 10);
  });
});

describe("histograms", () => {
  it("percentiles from the HDR histogram are within 0.1% of the exact ones", () => {
    const values = Array.from({ length: 10_000 }, (_, i) => 1 + i * 0.37);
    const h = histogramOf(values);
    const sorted = [...values].sort((a, b) => a - b);
    for (const p of [50, 90, 95, 99]) {
      const exact = sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
      expect(Math.abs(valueAtPercentile(h, p) - exact) / exact).toBeLessThan(0.001);
    }
  });

  it("round-trips through the encoding", () => {
    const h = histogramOf([1.5, 2.5, 100, 2500.25]);
    const back = decodeHistogram(encodeHistogram(h));
    expect(back.totalCount).toBe(4);
    expect(valueAtPercentile(back, 100)).toBeCloseTo(2500.25, 0);
  });

  it("summarizes with exact mean, sample stddev, min and max", () => {
    const s = summarize([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(s.mean).toBe(5);
    expect(s.stddev).toBeCloseTo(Math.sqrt(32 / 7), 10);
    expect([s.min, s.max, s.count]).toEqual([2, 9, 8]);
  });
});

describe("client vs server cross-check", () => {
  it("takes the median of client TTFT minus server prompt_ms, and of the decode-rate ratio", () => {
    const r = rec({ serverTimings: { prompt_ms: 8, predicted_per_second: 40 } });
    const cc = crossCheck([r, rec({ serverTimings: { prompt_ms: 6, predicted_per_second: 20 } })]);
    expect(cc.ttftMinusServerPromptMsP50).toBe(3);
    expect(cc.decodeRateRatioP50).toBeCloseTo(1.5, 10);
    expect(cc.samples).toBe(2);
  });
});
