import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ensureCachedModel } from "../../src/model/synth.js";
import { findCachedServer } from "../../src/target/llama-build.js";
import { cacheDir } from "../../src/util/cache-dir.js";

/**
 * Models and binaries for tests. Models are synthesized once into tokengate's cache dir and reused by every test file
 * and run (a few seconds the first time). Safe when several test files or processes ask at once: each writer uses its
 * own temporary file and renames it into place, and the bytes are deterministic, so whichever rename lands last wins
 * with identical content.
 */

/** tiny (L2/E64, 4.2M params) f16 with the llama-spm tokenizer: the embedded default model. ~9 MB. */
export function tinyModel(): Promise<string> {
  return ensureCachedModel({ preset: "tiny", quiet: true });
}

/** small (L8/E384, 39M params) q8_0 with the llama-spm tokenizer. ~41 MB. */
export function smallModel(): Promise<string> {
  return ensureCachedModel({ preset: "small", quiet: true });
}

/**
 * The llama-server binary for model tests: `$TOKENGATE_LLAMA_SERVER`, else the cached CPU build that
 * `tokengate server build` makes (`<cache>/llama-server/<tag>-cpu-<hash>/bin/llama-server`). Throws a clear error when
 * there is none, naming the build that is still running if there is one.
 */
export async function findLlamaServerForTests(): Promise<string> {
  const fromEnv = process.env.TOKENGATE_LLAMA_SERVER;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`TOKENGATE_LLAMA_SERVER=${fromEnv} does not exist`);
    return fromEnv;
  }
  const cached = await findCachedServer();
  if (cached) return cached;
  const root = cacheDir("llama-server");
  const entries = existsSync(root) ? readdirSync(root) : [];
  for (const name of entries.filter((n) => /-cpu-[0-9a-f]+$/.test(n)).sort()) {
    const bin = join(root, name, "bin", "llama-server");
    if (existsSync(bin)) return bin;
  }
  const building = entries.find((n) => /\.tmp-\d+$/.test(n));
  throw new Error(
    building
      ? `llama-server is still being built in ${join(root, building)}; wait for that build to finish, then rerun the model tests`
      : `no llama-server build found under ${root}; build one with \`npx tsx src/cli.ts server build\` (about 10 minutes on 2 cores) or set TOKENGATE_LLAMA_SERVER`,
  );
}
