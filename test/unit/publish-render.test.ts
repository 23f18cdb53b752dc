import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { annotateRegressions } from "../../src/publish/annotations.js";
import {
  COMMENT_MAX_CHARS,
  COMMENT_SAFE_CHARS,
  commentMarker,
  regressionsOf,
  renderComment,
  renderSummary,
} from "../../src/publish/render.js";
import { type PublishView, toPublishView } from "../../src/publish/view.js";
import { BadInputError } from "../../src/util/errors.js";

const fixture = () => JSON.parse(readFileSync(new URL("../fixtures/github/results.json", import.meta.url), "utf8"));
const view = (): PublishView => toPublishView(fixture(), "fixture");
const info = {
  marker: commentMarker("quick", "bench"),
  legLabel: "bench",
  runUrl: "https://github.com/o/r/actions/runs/1",
};

/** A view with `n` failing checks whose reasons are long: the shape of a comment that does not fit. */
function hugeView(n: number): PublishView {
  const v = view();
  v.verdict.checks = Array.from({ length: n }, (_, i) => ({
    test: `test-${i % 7}`,
    metric: `metric_${i}.p95`,
    source: "baseline" as const,
    verdict: i % 3 === 0 ? ("warn" as const) : ("fail" as const),
    value: 100 + i,
    reference: 100,
    reason: `reason ${i} `.repeat(40),
  }));
  return v;
}

describe("renderComment", () => {
  it("shows the verdict and the regressions worst first, and ends with the marker", () => {
    const { body, truncated } = renderComment(view(), info);
    expect(truncated).toBe(false);
    expect(body.split("\n")[0]).toContain("❌ tokengate: **fail**");
    expect(body.trimEnd().endsWith("<!-- tokengate:quick:bench -->")).toBe(true);
    const order = regressionsOf(view()).map((c) => c.metric);
    // fails before warns; among fails the larger change against the baseline first
    expect(order).toEqual(["ttft_ms.p95", "error_rate", "requests_per_s.mean"]);
    expect(body.indexOf("error\\_rate")).toBeLessThan(body.indexOf("requests\\_per\\_s.mean"));
    expect(body).not.toContain("+317"); // no percentage against an absolute target
    expect(body).toContain("+28.2%");
    expect(body).toContain("[workflow run](https://github.com/o/r/actions/runs/1)");
  });

  it("keeps text from the results file inert: no HTML, no links, no mentions, no second marker", () => {
    const { body } = renderComment(view(), info);
    expect(body).not.toMatch(/<img/i);
    expect(body).not.toContain("](javascript:");
    expect(body).not.toMatch(/@octocat|@org\/team/);
    // exactly one real marker, the last line; the one smuggled into a check reason is escaped
    expect(body.match(/<!-- tokengate:/g)).toHaveLength(1);
    expect(body).toContain("&lt;\\!\\-\\- tokengate:quick:bench \\-\\-&gt;");
  });

  it("falls back to a truncated view under the limit that keeps the verdict and the worst regressions", () => {
    const v = hugeView(3000);
    const { body, truncated } = renderComment(v, info);
    expect(truncated).toBe(true);
    expect(body.length).toBeLessThanOrEqual(COMMENT_SAFE_CHARS);
    expect(body.length).toBeLessThan(COMMENT_MAX_CHARS);
    expect(body).toContain("**fail**");
    expect(body).toContain("Truncated view");
    const worst = regressionsOf(v)[0]!;
    expect(body).toContain(worst.metric.replace(/_/g, "\\_").replace(/\./g, "."));
    expect(body).not.toContain("Results per test");
    expect(body.trimEnd().endsWith(info.marker)).toBe(true);
  });
});

describe("renderSummary", () => {
  it("includes the full report when it fits", () => {
    const { markdown, dropped } = renderSummary([{ view: view(), info, reportMarkdown: "# full report\n\nbody" }]);
    expect(dropped).toEqual([]);
    expect(markdown).toContain("<summary>Full report</summary>");
    expect(markdown).toContain("# full report");
  });

  it("stays under the budget by dropping the full report first, and says so", () => {
    const report = `# huge\n\n${"| a | b |\n".repeat(300_000)}`; // ~3 MB
    const { markdown, dropped } = renderSummary([{ view: view(), info, reportMarkdown: report }], 1_000_000);
    expect(Buffer.byteLength(markdown)).toBeLessThanOrEqual(1_000_000);
    expect(dropped).toEqual(["full reports"]);
    expect(markdown).toContain("The full report was left out of this summary");
    expect(markdown).toContain("Results per test"); // detail below the report level is kept
  });

  it("drops per-test detail next when the checks alone are too big", () => {
    // The full view caps its tables (300 checks, 50 regressions) at ~250 KB for this view; a 60 KB budget forces more.
    const { markdown, dropped } = renderSummary([{ view: hugeView(3000), info }], 60_000);
    expect(Buffer.byteLength(markdown)).toBeLessThanOrEqual(60_000);
    expect(dropped).toContain("per-test results and passing checks");
    expect(markdown).toContain("Truncated view");
  });
});

describe("annotateRegressions", () => {
  it("emits at most 10, fail as errors and warn as warnings, worst first, and counts the rest", () => {
    const errors: string[] = [];
    const warnings: string[] = [];
    const titles: string[] = [];
    const n = annotateRegressions(
      hugeView(25),
      {
        error: (m, p) => {
          errors.push(m);
          titles.push(p?.title ?? "");
        },
        warning: (m) => warnings.push(m),
      },
      { file: "examples/suites/quick.yml" },
    );
    expect(n).toBe(10);
    expect(errors.length + warnings.length).toBe(10);
    // 16 of 25 fail, so the worst 10 are all fails
    expect(warnings).toHaveLength(0);
    expect(errors.at(-1)).toContain("[15 more in the job summary]");
    expect(titles[0]).toMatch(/^tokengate fail: /);
  });

  it("keeps annotation text on one line", () => {
    const v = view();
    v.verdict.checks[0]!.reason = "line1\nline2\r\nline3";
    const msgs: string[] = [];
    annotateRegressions(v, { error: (m) => msgs.push(m), warning: (m) => msgs.push(m) });
    expect(msgs.every((m) => !/[\r\n]/.test(m))).toBe(true);
  });
});

describe("toPublishView", () => {
  it("accepts a real results file and drops fields it does not show", () => {
    const v = view();
    expect(v.verdict.overall).toBe("fail");
    expect((v.environment as Record<string, unknown>).memoryBytes).toBeUndefined();
  });

  it("rejects oversized or malformed input from untrusted artifacts with a clear error", () => {
    const many = fixture();
    many.verdict.checks = Array.from({ length: 2001 }, () => many.verdict.checks[0]);
    const err = (() => {
      try {
        toPublishView(many, "artifact x: results.json");
      } catch (e) {
        return e as BadInputError;
      }
    })();
    expect(err).toBeInstanceOf(BadInputError);
    expect(err?.userMessage()).toMatch(/^artifact x: results.json: .*verdict.checks/);
    const long = fixture();
    long.suite.name = "x".repeat(5000);
    expect(() => toPublishView(long, "f")).toThrow(/suite.name/);
    const wrong = fixture();
    wrong.verdict.overall = "<b>pass</b>";
    expect(() => toPublishView(wrong, "f")).toThrow(/verdict.overall/);
    expect(() => toPublishView([], "f")).toThrow(/not a tokengate results file/);
  });
});
