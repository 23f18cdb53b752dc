import type { TargetKind } from "../target/types.js";

/**
 * One typed config for a run, built by an entry (CLI flags or Action inputs). Flags override the suite file.
 * Every field's default is the one documented in the README's CLI reference.
 */
export interface RunConfig {
  /** Suite file (YAML or JSON). Default: examples/suites/quick.yml of the installed package. */
  suiteFile?: string;
  /** Default: the suite's `target.kind`, else in-process. */
  target?: TargetKind;
  /** GGUF model. Default: the suite's `target.model`, else the embedded synthetic tiny model. */
  modelPath?: string;
  /** llama-server binary. Default: the suite's, else PATH, else the `tokengate server build` cache. */
  serverBin?: string;
  /** external: base URL. */
  url?: string;
  /** Environment variable holding the external server's API key. Default TOKENGATE_API_KEY. */
  apiKeyEnv?: string;
  /**
   * external: how long refused connections are retried (a server still starting), in ms. Default: the suite's
   * `target.waitForServerMs`, else a few seconds (REFUSED_GRACE_MS in src/target/external.ts).
   */
  waitForServerMs?: number;
  /** A results file or baseline file/folder to compare with. */
  baselinePath?: string;
  /** Where results.json, records.ndjson, report.md (and the server log) go. */
  outDir: string;
  /** Overrides the suite's trials. */
  trials?: number;
  /** No progress display (tests). */
  quiet?: boolean;
}
