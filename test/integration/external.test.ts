import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ownProcesses, startMachineSampler } from "../../src/measure/machine-load.js";
import { createExternalTarget } from "../../src/target/external.js";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import { freePort } from "../../src/target/port.js";
import type { Target } from "../../src/target/types.js";
import { BadInputError, CouldNotRunError } from "../../src/util/errors.js";
import { redact } from "../../src/util/secrets.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

// The external target against real llama-servers that the llama-server target started: one open, one with an API key.

const KEY = "tg-test-key-5f1c9a7e";
const dir = mkdtempSync(join(tmpdir(), "tokengate-external-test-"));
let open: Target & { logFile: string; pid(): number | undefined };
let locked: Target & { logFile: string; pid(): number | undefined };
let openUrl: string;
let lockedUrl: string;

beforeAll(async () => {
  const serverBin = await findLlamaServerForTests();
  const model = await tinyModel();
  open = createLlamaServerTarget({ model, serverBin, threads: 1, logFile: join(dir, "open.log") });
  locked = createLlamaServerTarget({ model, serverBin, threads: 1, apiKey: KEY, logFile: join(dir, "locked.log") });
  openUrl = (await open.start()).baseUrl;
  lockedUrl = (await locked.start()).baseUrl;
});

afterAll(async () => {
  await open?.stop();
  await locked?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("external target", () => {
  it("reaches a llama-server without a key and detects what it offers", async () => {
    await using t = createExternalTarget({ url: `${openUrl}/v1/`, env: {} });
    const ep = await t.start();
    expect(ep.baseUrl).toBe(openUrl);
    expect(ep.apis).toEqual(["completion", "openai-completions", "openai-chat"]);
    expect(ep.metricsUrl).toBe(`${openUrl}/metrics`);
    expect(ep.apiKey).toBeUndefined();
    expect(ep.modelName).toBe((await open.start()).modelName);
    expect(t.alive()).toBe(true);
    const fp = await t.fingerprint();
    expect(fp.kind).toBe("external");
    expect(fp.build).toBe((await open.fingerprint()).build);
    expect(fp.details.llamaServer).toBe(true);
    expect(fp.details.modelId).toBe(ep.modelName);
    expect(fp.details.url).toBe(openUrl);
    await t.stop();
    expect(t.alive()).toBe(false);
    // stop() forgets the server; it never stops a server it did not start.
    expect((await request(`${openUrl}/health`)).statusCode).toBe(200);
  });

  it("works with the right API key, and the key stays out of the fingerprint and the log", async () => {
    await using t = createExternalTarget({ url: lockedUrl, apiKeyEnv: "MY_LLM_KEY", env: { MY_LLM_KEY: KEY } });
    const ep = await t.start();
    expect(ep.apiKey).toBe(KEY);
    expect(ep.apis).toContain("completion");
    // /metrics is behind the key on llama-server; it answered, so the key was sent.
    expect(ep.metricsUrl).toBe(`${lockedUrl}/metrics`);
    const fp = await t.fingerprint();
    expect(fp.build).toMatch(/^b\d+/);
    expect(fp.details.usesApiKey).toBe(true);
    expect(JSON.stringify(fp)).not.toContain(KEY);
    expect(JSON.stringify(await locked.fingerprint())).not.toContain(KEY);
    expect(readFileSync(locked.logFile, "utf8")).not.toContain(KEY);
    expect(redact(`Authorization: Bearer ${KEY}`)).toBe("Authorization: Bearer ***");
  });

  it("a server that needs a key and gets none says so", async () => {
    const t = createExternalTarget({ url: lockedUrl, env: {}, readyTimeoutMs: 5000 });
    const err = await t.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as BadInputError).message).toMatch(/requires an API key.*HTTP 401/);
    expect((err as BadInputError).subject).toBe("$TOKENGATE_API_KEY");
  });

  it("a wrong key is a clear error that does not print the key", async () => {
    const wrong = "tg-wrong-key-0d0d0d0d";
    const t = createExternalTarget({ url: lockedUrl, env: { TOKENGATE_API_KEY: wrong }, readyTimeoutMs: 5000 });
    const err = await t.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    const text = (err as BadInputError).userMessage();
    expect(text).toMatch(/rejected the API key from \$TOKENGATE_API_KEY/);
    expect(text).not.toContain(wrong);
    expect(redact(`key ${wrong}`)).toBe("key ***");
  });

  it("nothing listening is could-not-run after the deadline", async () => {
    const port = await freePort();
    const t = createExternalTarget({ url: `http://127.0.0.1:${port}`, env: {}, readyTimeoutMs: 800 });
    const err = await t.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CouldNotRunError);
    expect((err as Error).message).toContain("connection refused");
    expect((err as CouldNotRunError).hint).toContain("--url http://127.0.0.1:8080");
    expect(t.alive()).toBe(false);
  });
});

describe.runIf(process.platform === "linux")("the busy-machine guard and an external server on this machine", () => {
  it("finds the llama-server behind a loopback URL by its port (127.0.0.1 and localhost), and never as pid()", async () => {
    await using t = createExternalTarget({ url: openUrl, env: {} });
    expect(t.servingPids?.()).toEqual([]);
    await t.start();
    expect(t.servingPids?.()).toEqual([open.pid()]);
    // Not pid(): that names what tokengate owns, and the Action's post step kills it.
    expect(t.pid).toBeUndefined();
    const port = new URL(openUrl).port;
    await using byName = createExternalTarget({ url: `http://localhost:${port}`, env: {} });
    await byName.start();
    expect(byName.servingPids?.()).toEqual([open.pid()]);
  });

  it("its CPU time is the test's own work, not other work", async () => {
    await using t = createExternalTarget({ url: openUrl, env: {} });
    await t.start();
    // Two samplers over the same window: one knows the server (as the pipeline's ownProcesses), one does not.
    const knowing = startMachineSampler(ownProcesses(t));
    const blind = startMachineSampler(() => [process.pid]);
    for (let i = 0; i < 12; i++) {
      const r = await request(`${openUrl}/completion`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        // Random weights emit lone UTF-8 byte tokens (ids 3..258), which llama-server answers with HTTP 500: ban them.
        body: JSON.stringify({
          prompt: "Hello there",
          n_predict: 128,
          ignore_eos: true,
          cache_prompt: false,
          logit_bias: Array.from({ length: 256 }, (_, i) => [i + 3, false]),
        }),
      });
      expect(r.statusCode).toBe(200);
      await r.body.text();
    }
    const k = knowing.stop()!;
    const b = blind.stop()!;
    expect(k.serverUnknown).toBeUndefined();
    // What the blind sampler calls other work, the knowing one calls ours: the server decoded 1536 tokens meanwhile.
    const serverShare = k.ownShare - b.ownShare;
    expect(serverShare).toBeGreaterThan(0);
    expect(b.otherShare - k.otherShare).toBeCloseTo(serverShare, 1);
  });
});
