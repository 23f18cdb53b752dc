import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkOutDir } from "../../src/config/out-dir.js";
import { BadInputError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "tg-out-dir-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("checkOutDir", () => {
  it("accepts an existing folder and a folder still to be made, and creates nothing", () => {
    mkdirSync(join(dir, "there"));
    expect(checkOutDir(join(dir, "there"))).toBe(join(dir, "there"));
    expect(checkOutDir(join(dir, "a", "b", "c"))).toBe(join(dir, "a", "b", "c"));
    expect(() => checkOutDir(join(dir, "a"))).not.toThrow();
    // Checked, not made: the pipeline makes it once the suite has loaded.
    expect(() => mkdirSync(join(dir, "a"))).not.toThrow();
  });

  it("names the subject it is given (the Action names its own input)", () => {
    writeFileSync(join(dir, "f"), "x");
    try {
      checkOutDir(join(dir, "f"), "out-dir");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BadInputError);
      expect((e as BadInputError).subject).toBe("out-dir");
      expect((e as BadInputError).hint).toContain("--out tokengate-results");
    }
  });

  it.each(["/proc/1/x", "/sys", "/proc/../proc/self"])("refuses %s by its name", (p) => {
    expect(() => checkOutDir(p)).toThrow(/kernel file system/);
  });

  it("does not refuse names that merely start like /proc (/processed)", () => {
    // resolve() keeps it absolute; /processed does not exist, so its parent / is checked: writable for root, and
    // for another user a permission error, never the kernel-file-system one.
    let message = "";
    try {
      checkOutDir("/processed-results");
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).not.toMatch(/kernel file system/);
  });
});
