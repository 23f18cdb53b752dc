import { describe, expect, it } from "vitest";
import { escapeMarkdown, slug } from "../../src/report/escape.js";

describe("escapeMarkdown", () => {
  it("turns HTML into entities, so no tag or comment (marker forgery) survives", () => {
    const out = escapeMarkdown('<!-- tokengate:x:y --><img src=x onerror="alert(1)">&amp;');
    expect(out).not.toMatch(/[<>]/);
    expect(out).toContain("&lt;\\!\\-\\- tokengate:x:y \\-\\-&gt;");
    expect(out).toContain("&amp;amp;");
    expect(out).toContain("&quot;");
  });

  it("escapes inline markdown: links, images, emphasis, code, table pipes, math", () => {
    const out = escapeMarkdown("[click](javascript:alert(1)) ![i](u) *b* _i_ `c` a|b $x$ ~~s~~");
    for (const c of ["[", "]", "(", ")", "!", "*", "_", "`", "|", "$", "~"]) {
      // every occurrence is preceded by a backslash
      const raw = new RegExp(`(^|[^\\\\])\\${c}`);
      expect(out, c).not.toMatch(raw);
    }
  });

  it("keeps text on one line, so it cannot start a heading, list or table row", () => {
    const out = escapeMarkdown("a\n# heading\r\n| x | y |\n- item");
    expect(out).not.toContain("\n");
    expect(out).toBe("a \\#\u200b heading \\| x \\| y \\| \\- item");
  });

  it("breaks @mentions and #references with a zero-width space", () => {
    const out = escapeMarkdown("ping @octocat and @org/team about #123");
    expect(out).toContain("@\u200boctocat");
    expect(out).toContain("@\u200borg/team");
    expect(out).toContain("\\#\u200b123");
  });

  it("removes control and bidi-override characters and caps the length", () => {
    expect(escapeMarkdown("a\u0000b\u202ec\u0007")).toBe("abc");
    const long = escapeMarkdown("x".repeat(1000), { maxLength: 10 });
    expect(long).toBe(`${"x".repeat(9)}…`);
    expect(escapeMarkdown(42)).toBe("42");
  });
});

describe("slug", () => {
  it("keeps only [A-Za-z0-9._-] and is never empty", () => {
    expect(slug("bench (gpu: h200, model: 7b)")).toBe("bench-gpu-h200-model-7b");
    expect(slug("<!-- -->")).toBe("default");
    expect(slug("a".repeat(200), 10)).toBe("aaaaaaaaaa");
    expect(slug("../../etc")).toBe("etc");
  });
});
