import { readFileSync } from "node:fs";
import { join } from "node:path";
import { nodeLlamaCppDir } from "../llama-build.js";

export interface NodeLlamaCppBuild {
  version: string;
  /** The llama.cpp release node-llama-cpp bundles (`llama/llama.cpp.info.json`), e.g. `v0.4.0`. */
  llamaCppTag: string;
  /** One string for fingerprints and `system_fingerprint`: `node-llama-cpp@3.21.1+llama.cpp@v0.4.0`. */
  label: string;
}

let cached: NodeLlamaCppBuild | undefined;

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** node-llama-cpp's version and its llama.cpp tag, read from its package folder (no native code is loaded). */
export function nodeLlamaCppBuild(): NodeLlamaCppBuild {
  if (cached) return cached;
  const dir = nodeLlamaCppDir();
  const version = String(readJson(join(dir, "package.json")).version ?? "unknown");
  const llamaCppTag = String(readJson(join(dir, "llama", "llama.cpp.info.json")).tag ?? "unknown");
  cached = { version, llamaCppTag, label: `node-llama-cpp@${version}+llama.cpp@${llamaCppTag}` };
  return cached;
}
