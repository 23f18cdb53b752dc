import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  buildLlamaServer,
  cachedBinary,
  findCachedServer,
  llamaSource,
  planBuild,
  resolveBackend,
} from "../../src/target/llama-build.js";
import { BadInputError } from "../../src/util/errors.js";

// The cache layout (`<cache>/llama-server/<tag>-<backend>-<flags hash>/bin/`) is what `tokengate server build` writes
// and the llama-server target finds; these tests pin it with a private TOKENGATE_CACHE_DIR.
describe("llama-build cache layout", () => {
  let cache: string;
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.TOKENGATE_CACHE_DIR;
    cache = mkdtempSync(join(tmpdir(), "tokengate-build-test-"));
    process.env.TOKENGATE_CACHE_DIR = cache;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.TOKENGATE_CACHE_DIR;
    else process.env.TOKENGATE_CACHE_DIR = saved;
    rmSync(cache, { recursive: true, force: true });
  });

  it("reads the llama.cpp source bundle that node-llama-cpp ships", () => {
    const src = llamaSource();
    expect(existsSync(src.bundle)).toBe(true);
    expect(src.tag).toMatch(/^v?\d+\.\d+/);
  });

  it("keys builds by tag, backend and a hash of the cmake flags", () => {
    const src = { bundle: "/nowhere", tag: "v9.9.9" };
    const a = planBuild(src, "cpu");
    const b = planBuild(src, "cpu");
    const c = planBuild(src, "cpu", ["-DGGML_AVX512=OFF"]);
    const d = planBuild(src, "cuda");
    expect(a.key).toBe(b.key);
    expect(a.key).toMatch(/^v9\.9\.9-cpu-[0-9a-f]{12}$/);
    expect(c.key).not.toBe(a.key);
    expect(d.key).toMatch(/^v9\.9\.9-cuda-/);
    expect(d.cmakeFlags).toContain("-DGGML_CUDA=ON");
    expect(a.cmakeFlags).toContain("-DGGML_NATIVE=ON");
    expect(a.cmakeFlags).toContain("-DLLAMA_USE_PREBUILT_UI=OFF");
    expect(a.dir).toBe(join(cache, "llama-server", a.key));
    expect(a.binDir).toBe(join(a.dir, "bin"));
  });

  it("counts a cache entry only when the binary and build-info.json are both there", async () => {
    const plan = planBuild(llamaSource(), await resolveBackend("auto"));
    expect(cachedBinary(plan)).toBeUndefined();
    mkdirSync(plan.binDir, { recursive: true });
    writeFileSync(join(plan.binDir, "llama-server"), "#!/bin/sh\n");
    chmodSync(join(plan.binDir, "llama-server"), 0o755);
    // A half-finished cache (no build-info.json) must not look complete.
    expect(cachedBinary(plan)).toBeUndefined();
    expect(await findCachedServer()).toBeUndefined();
    writeFileSync(join(plan.dir, "build-info.json"), "{}\n");
    expect(cachedBinary(plan)).toBe(join(plan.binDir, "llama-server"));
    expect(await findCachedServer()).toBe(join(plan.binDir, "llama-server"));
  });

  it("returns a cached build without building", async () => {
    const plan = planBuild(llamaSource(), "cpu");
    mkdirSync(plan.binDir, { recursive: true });
    writeFileSync(join(plan.binDir, "llama-server"), "");
    writeFileSync(join(plan.dir, "build-info.json"), "{}\n");
    const r = await buildLlamaServer({ backend: "cpu", quiet: true });
    expect(r.cached).toBe(true);
    expect(r.serverBin).toBe(join(plan.binDir, "llama-server"));
  });

  it("rejects a bad --jobs before doing any work", async () => {
    await expect(buildLlamaServer({ backend: "cpu", jobs: 0, quiet: true })).rejects.toBeInstanceOf(BadInputError);
    expect(existsSync(join(cache, "llama-server"))).toBe(false);
  });

  it("resolves an explicit cpu backend without probing", async () => {
    expect(await resolveBackend("cpu")).toBe("cpu");
  });
});
