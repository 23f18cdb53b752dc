/**
 * One failure vocabulary for the whole pipeline. Deep code throws these with context; only the entries
 * (src/cli.ts, src/action.ts) turn them into an exit code or `core.setFailed`.
 *
 * Exit codes (also in the README): 0 pass or warn, 1 fail, 2 bad input, 3 could not run / measure.
 */
export const ExitCode = {
  pass: 0,
  fail: 1,
  badInput: 2,
  couldNotRun: 3,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorContext {
  /** The thing that is wrong: a file path, a flag, a suite field (`tests[1].concurrency`). */
  subject?: string;
  /** What to do about it, with a good example where one helps. */
  hint?: string;
  cause?: unknown;
}

export abstract class TokengateError extends Error {
  abstract readonly exitCode: ExitCodeValue;
  readonly subject: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.subject = context.subject;
    this.hint = context.hint;
  }

  /** The one paragraph a user sees: what, where, what to do. Never a stack trace. */
  userMessage(): string {
    const where = this.subject ? `${this.subject}: ` : "";
    const hint = this.hint ? `\n  hint: ${this.hint}` : "";
    return `${where}${this.message}${hint}`;
  }
}

/** The user gave us something we cannot use: a file, a flag, a suite field, a model, a baseline. Exit 2. */
export class BadInputError extends TokengateError {
  readonly exitCode = ExitCode.badInput;
}

/** The input was fine but the environment would not let us run or measure: build failed, server never healthy. Exit 3. */
export class CouldNotRunError extends TokengateError {
  readonly exitCode = ExitCode.couldNotRun;
}

export function isTokengateError(e: unknown): e is TokengateError {
  return e instanceof TokengateError;
}
