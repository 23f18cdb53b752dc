import { homedir } from "node:os";
import { join } from "node:path";

/**
 * tokengate's cache directory: `$TOKENGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/tokengate`, else `~/.cache/tokengate`.
 * Holds built llama-server binaries (keyed by source tag + backend + flags) and the embedded default model.
 */
export function cacheDir(...parts: string[]): string {
  const root =
    process.env.TOKENGATE_CACHE_DIR ||
    (process.env.XDG_CACHE_HOME
      ? join(process.env.XDG_CACHE_HOME, "tokengate")
      : join(homedir(), ".cache", "tokengate"));
  return join(root, ...parts);
}
