import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { childEntry, childExecArgv, createInProcessTarget } from "../../src/target/in-process/target.js";
import { BadInputError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "tokengate-in-process-entry-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("childEntry: the forked server's file, relative to the running code", () => {
  it("from the TypeScript sources: child.ts beside target.ts", () => {
    const target = new URL("../../src/target/in-process/target.ts", import.meta.url).href;
    expect(childEntry(target)).toMatch(/src\/target\/in-process\/child\.ts$/);
  });

  it("from the bundle: dist/in-process-server.js beside the entry, or one folder up from a shared chunk", () => {
    const dist = join(dir, "dist");
    mkdirSync(join(dist, "chunks"), { recursive: true });
    writeFileSync(join(dist, "in-process-server.js"), "");
    expect(childEntry(pathToFileURL(join(dist, "cli.js")).href)).toBe(join(dist, "in-process-server.js"));
    expect(childEntry(pathToFileURL(join(dist, "chunks", "pipeline-abc.js")).href)).toBe(
      join(dist, "in-process-server.js"),
    );
  });
});

describe("childExecArgv", () => {
  it("adds tsx's loader for a .ts entry when the parent has none (vitest workers)", () => {
    const args = childExecArgv("/x/child.ts", []);
    expect(args[0]).toBe("--import");
    expect(args[1]).toMatch(/^file:\/\/.*tsx\/dist\/loader\.mjs$/);
  });

  it("keeps the loader the parent already runs with (tsx puts it in execArgv) and does not add a second", () => {
    const underTsx = [
      "--require",
      "/m/node_modules/tsx/dist/preflight.cjs",
      "--import",
      "file:///m/node_modules/tsx/dist/loader.mjs",
    ];
    expect(childExecArgv("/x/child.ts", underTsx)).toEqual(underTsx);
  });

  it("passes node flags on to a .js entry, minus debugger flags", () => {
    expect(childExecArgv("/x/in-process-server.js", ["--inspect=9229", "--max-old-space-size=512"])).toEqual([
      "--max-old-space-size=512",
    ]);
  });
});

describe("createInProcessTarget", () => {
  it("rejects bad options at once, naming the field", () => {
    expect(() => createInProcessTarget({ modelPath: "m.gguf", sequences: 0 })).toThrow(BadInputError);
    expect(() => createInProcessTarget({ modelPath: "" })).toThrow(/no model given/);
  });
});
