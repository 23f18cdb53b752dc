import { describe, expect, it } from "vitest";
import { durationFlag, intFlag } from "../../src/cli/args.js";
import { BadInputError } from "../../src/util/errors.js";

function errorOf(fn: () => unknown): BadInputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BadInputError) return e;
    throw e;
  }
  throw new Error("expected a BadInputError");
}

describe("durationFlag", () => {
  it.each([
    ["120s", 120_000],
    ["2m", 120_000],
    ["1.5s", 1500],
    ["500ms", 500],
    ["90000", 90_000],
    ["1h", 3_600_000],
    ["0", 0],
    [" 2M ", 120_000],
  ])("reads %s as %d ms", (text, ms) => {
    expect(durationFlag(text, "--wait-for-server", "--wait-for-server 2m")).toBe(ms);
  });

  it("is undefined when the flag is not given", () => {
    expect(durationFlag(undefined, "--wait-for-server", "--wait-for-server 2m")).toBeUndefined();
  });

  it.each(["2 minutes", "-5s", "5x", "", "s", "1e3", "2m30s"])(
    "refuses %j, naming the flag with an example",
    (text) => {
      const e = errorOf(() => durationFlag(text, "--wait-for-server", "--wait-for-server 2m"));
      expect(e.subject).toBe("--wait-for-server");
      expect(e.message).toContain(JSON.stringify(text));
      expect(e.hint).toContain("--wait-for-server 2m");
      expect(e.exitCode).toBe(2);
    },
  );

  it("refuses more than the maximum, saying the maximum", () => {
    const e = errorOf(() => durationFlag("2h", "--wait-for-server", "--wait-for-server 2m", 3_600_000));
    expect(e.message).toContain("at most 60 minutes");
  });
});

describe("intFlag", () => {
  it("refuses more than its maximum, with the reason", () => {
    expect(intFlag("1000", "--trials", "--trials 5", 1, { max: 1000, why: "each trial runs the test again" })).toBe(
      1000,
    );
    const e = errorOf(() =>
      intFlag("1001", "--trials", "--trials 5", 1, { max: 1000, why: "each trial runs the test again" }),
    );
    expect(e.message).toBe('must be an integer from 1 to 1000 (each trial runs the test again), got "1001"');
    expect(e.subject).toBe("--trials");
  });
});
