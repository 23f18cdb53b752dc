/**
 * API keys and tokens must never reach a log, a report or a results file. Code that reads a secret registers it here;
 * everything tokengate prints or writes for people passes through `redact()` (the CLI's output and error paths; the
 * Action additionally calls `core.setSecret`, which masks the runner's log).
 *
 * Invariant: redaction replaces every occurrence of every registered value, longest first, so a secret that contains
 * another is never half-masked.
 */
const MASK = "***";
const secrets = new Set<string>();

/**
 * Remembers a secret so `redact()` masks it. Empty and whitespace-only values are ignored: masking "" would be
 * meaningless. Returns the value, so `const key = registerSecret(process.env.X)` reads naturally.
 */
export function registerSecret<T extends string | undefined>(value: T): T {
  if (value !== undefined && value.trim() !== "") {
    secrets.add(value);
    // A key is often passed trimmed or untrimmed in different places; mask both forms.
    if (value.trim() !== value) secrets.add(value.trim());
  }
  return value;
}

/** `text` with every registered secret replaced by `***`. */
export function redact(text: string): string {
  if (secrets.size === 0) return text;
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join(MASK);
  return out;
}

/** The printable form of a secret: `***` when one is set, `(none)` otherwise. Never reveals a prefix or length. */
export function maskSecret(value: string | undefined): string {
  return value === undefined || value === "" ? "(none)" : MASK;
}

/** Number of registered secrets (tests; diagnostics that must not show the values). */
export function secretCount(): number {
  return secrets.size;
}

/** Forgets all secrets. For tests only: production code has no reason to unregister one. */
export function clearSecretsForTests(): void {
  secrets.clear();
}
