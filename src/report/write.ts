import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Writes a file so that readers never see half of it: write a sibling temp file, then rename over the target. */
export function writeTextAtomic(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** JSON with NaN/Infinity written as null (JSON has no NaN), 2-space indented. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeTextAtomic(
    file,
    `${JSON.stringify(value, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`,
  );
}
