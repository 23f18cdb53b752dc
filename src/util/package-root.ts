import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: { root: string; version: string } | undefined;

/** tokengate's own package folder (works from src/ under tsx/vitest and from the dist/ bundle). */
export function packageInfo(): { root: string; version: string } {
  if (cached) return cached;
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (!existsSync(pkg)) continue;
    const json = JSON.parse(readFileSync(pkg, "utf8")) as { name?: string; version?: string };
    if (json.name === "tokengate") {
      cached = { root: dir, version: json.version ?? "0.0.0" };
      return cached;
    }
  }
  throw new Error("tokengate's package.json was not found above this module");
}
