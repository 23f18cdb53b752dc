/** `tokengate compare` and `validate` take the comparison policy as flags; real H200 results as inputs. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runCompareCommand, runValidateCommand } from "../../src/cli/handlers.js";
import { BadInputError } from "../../src/util/errors.js";

const dir = fileURLToPath(new URL("../../docs/runs/validation/h200-l32-l36/", import.meta.url));
const f = (name: string) => `${dir}${name}.json`;

describe("policy flags", () => {
  let out = "";
  beforeEach(() => {
    out = "";
    vi.spyOn(process.stdout, "write").mockImplementation((s) => {
      out += String(s);
      return true;
    });
  });
  afterEach(() => vi.restoreAllMocks());

  it("compare: the real 10% slowdown fails against a 5-run baseline by default, and warns with a 15% fail threshold", async () => {
    const { updateBaseline } = await import("../../src/analysis/baseline.js");
    const tmp = mkdtempSync(join(tmpdir(), "tg-flags-"));
    const { file } = await updateBaseline({
      from: ["a1", "a2", "a3", "a4", "a5"].map(f),
      to: join(tmp, "h200.json"),
    });
    const args = ["--baseline", file, "--candidate", f("b1"), "--candidate", f("b2")];
    const code = await runCompareCommand(args);
    expect(out).toMatch(/tpot p50 \+10% .* above fail 10% \(5 vs 2 runs, 25 vs 10 trials/);
    expect(code).toBe(1);
    out = "";
    expect(await runCompareCommand([...args, "--fail-threshold", "15%"])).toBe(0);
    expect(out).not.toMatch(/above fail/);
    expect(out).toMatch(/tpot p50 \+10% .* above warn 5%/);
  });

  it("validate: a larger assumed run noise holds the same slowdown at warn", async () => {
    const a = Array.from({ length: 6 }, (_, i) => f(`a${i + 1}`));
    const b = Array.from({ length: 6 }, (_, i) => f(`b${i + 1}`));
    await runValidateCommand(["--a", ...a, "--b", ...b, "--comparisons", "100", "--run-noise", "20%"]);
    expect(out).toMatch(/after confirmation \(fresh run\): pass \d+, warn \d+, fail 0:/);
  });

  it("refuses an ambiguous or inconsistent threshold, naming the flag", async () => {
    const args = ["--baseline", f("a1"), "--candidate", f("b1")];
    await expect(runCompareCommand([...args, "--fail-threshold", "10"])).rejects.toMatchObject({
      subject: "--fail-threshold",
      hint: "write 10% or 0.1",
    });
    await expect(
      runCompareCommand([...args, "--warn-threshold", "20%", "--fail-threshold", "10%"]),
    ).rejects.toBeInstanceOf(BadInputError);
    await expect(
      runCompareCommand([...args, "--warn-threshold", "20%", "--fail-threshold", "10%"]),
    ).rejects.toMatchObject({ subject: "--warn-threshold" });
  });
});
