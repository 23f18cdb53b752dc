import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Input, Output, readActionInputs } from "../../src/config/action-inputs.js";
import { legOf } from "../../src/publish/context.js";
import { commentDecision } from "../../src/publish/sticky-comment.js";
import { BadInputError } from "../../src/util/errors.js";

const actionYml = parse(readFileSync(new URL("../../action.yml", import.meta.url), "utf8")) as {
  inputs: Record<string, { default?: string }>;
  outputs: Record<string, unknown>;
  runs: Record<string, string>;
};

const inputsFrom = (values: Record<string, string>) => (name: string) => values[name] ?? "";

describe("action.yml", () => {
  it("declares exactly the inputs and outputs of src/config/action-inputs.ts", () => {
    expect(Object.keys(actionYml.inputs).sort()).toEqual(Object.values(Input).sort());
    expect(Object.keys(actionYml.outputs).sort()).toEqual(Object.values(Output).sort());
  });

  it("runs on node24 with the bundled main and post entries", () => {
    expect(actionYml.runs).toEqual({ using: "node24", main: "dist/index.js", post: "dist/post.js" });
  });

  it("defaults the token to the job's token and the matrix to the job's matrix", () => {
    // biome-ignore-start lint/suspicious/noTemplateCurlyInString: GitHub Actions expressions
    expect(actionYml.inputs["github-token"]?.default).toBe("${{ github.token }}");
    expect(actionYml.inputs.matrix?.default).toBe("${{ toJSON(matrix) }}");
    // biome-ignore-end lint/suspicious/noTemplateCurlyInString: GitHub Actions expressions
  });
});

describe("readActionInputs", () => {
  const env = { GITHUB_WORKSPACE: "/ws" };

  it("uses the documented defaults", () => {
    const i = readActionInputs(inputsFrom({}), env);
    expect(i).toMatchObject({
      mode: "run",
      commentMode: "always",
      failOn: "fail",
      artifactName: "tokengate",
      artifactRetentionDays: 0,
      workingDirectory: "/ws",
      githubToken: "",
    });
    expect(i.suiteFile).toBeUndefined();
    expect(i.target).toBeUndefined();
  });

  it("resolves paths against working-directory, and keeps a bare server-bin name for PATH lookup", () => {
    const i = readActionInputs(
      inputsFrom({
        "working-directory": "sub",
        suite: "suites/a.yml",
        baseline: "baselines",
        "server-bin": "llama-server",
        model: "/abs/m.gguf",
      }),
      env,
    );
    expect(i.workingDirectory).toBe("/ws/sub");
    expect(i.suiteFile).toBe("/ws/sub/suites/a.yml");
    expect(i.baselinePath).toBe("/ws/sub/baselines");
    expect(i.serverBin).toBe("llama-server");
    expect(i.modelPath).toBe("/abs/m.gguf");
    expect(readActionInputs(inputsFrom({ "server-bin": "./bin/llama-server" }), env).serverBin).toBe(
      "/ws/bin/llama-server",
    );
  });

  it.each([
    [{ "comment-mode": "sometimes" }, "input comment-mode", /always, on-change, on-alert, off/],
    [{ "fail-on": "error" }, "input fail-on", /fail, warn, never/],
    [{ mode: "publish" }, "input mode", /run, report/],
    [{ target: "vllm" }, "input target", /in-process, llama-server, external/],
    [{ "artifact-retention-days": "365" }, "input artifact-retention-days", /1 to 90/],
    [{ "artifact-name": "a/b" }, "input artifact-name", /cannot have/],
    [{ "api-key-env": "sk-abc123" }, "input api-key-env", /NAME of an environment variable/],
  ])("refuses %o naming the input and a good example", (values, subject, message) => {
    let err: unknown;
    try {
      readActionInputs(inputsFrom(values as Record<string, string>), env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadInputError);
    const e = err as BadInputError;
    expect(e.subject).toBe(subject);
    expect(e.message).toMatch(message);
    expect(e.hint).toBeTruthy();
  });
});

describe("legOf", () => {
  it("is the job id outside a matrix", () => {
    expect(legOf("bench", "null", undefined)).toEqual({ id: "bench", label: "bench" });
    expect(legOf("bench", undefined, undefined)).toEqual({ id: "bench", label: "bench" });
  });

  it("adds a hash of the matrix values that does not depend on key order", () => {
    const a = legOf("bench", '{"gpu":"h200","model":"7b"}', undefined);
    const b = legOf("bench", '{"model":"7b","gpu":"h200"}', undefined);
    const c = legOf("bench", '{"gpu":"h200","model":"13b"}', undefined);
    expect(a.id).toBe(b.id);
    expect(a.id).not.toBe(c.id);
    expect(a.id).toMatch(/^bench-[0-9a-f]{8}$/);
    expect(a.label).toBe("bench (gpu: h200, model: 7b)");
  });

  it("uses an explicit leg, made safe for markers and artifact names", () => {
    expect(legOf("bench", '{"x":1}', "H200 / 7B <q4>").id).toBe("H200-7B-q4");
  });
});

describe("commentDecision", () => {
  it.each([
    ["always", "pass", "create-or-update"],
    ["always", "fail", "create-or-update"],
    ["on-change", "pass", "update-only"],
    ["on-change", "warn", "create-or-update"],
    ["on-alert", "pass", "skip"],
    ["on-alert", "warn", "create-or-update"],
    ["on-alert", "fail", "create-or-update"],
    ["off", "fail", "skip"],
  ] as const)("%s with %s -> %s", (mode, verdict, expected) => {
    expect(commentDecision(mode, verdict)).toBe(expected);
  });
});
