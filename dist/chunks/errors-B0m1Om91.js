import { createRequire as __tokengateCreateRequire } from "node:module";
const require = __tokengateCreateRequire(import.meta.url);
/**
 * One failure vocabulary for the whole pipeline. Deep code throws these with context; only the entries
 * (src/cli.ts, src/action.ts) turn them into an exit code or `core.setFailed`.
 *
 * Exit codes (also in the README): 0 pass or warn, 1 fail, 2 bad input, 3 could not run / measure.
 */
const ExitCode = {
    pass: 0,
    fail: 1,
    badInput: 2,
    couldNotRun: 3,
};
class TokengateError extends Error {
    subject;
    hint;
    constructor(message, context = {}) {
        super(message, context.cause === undefined ? undefined : { cause: context.cause });
        this.name = new.target.name;
        this.subject = context.subject;
        this.hint = context.hint;
    }
    /** The one paragraph a user sees: what, where, what to do. Never a stack trace. */
    userMessage() {
        const where = this.subject ? `${this.subject}: ` : "";
        const hint = this.hint ? `\n  hint: ${this.hint}` : "";
        return `${where}${this.message}${hint}`;
    }
}
/** The user gave us something we cannot use: a file, a flag, a suite field, a model, a baseline. Exit 2. */
class BadInputError extends TokengateError {
    exitCode = ExitCode.badInput;
}
/** The input was fine but the environment would not let us run or measure: build failed, server never healthy. Exit 3. */
class CouldNotRunError extends TokengateError {
    exitCode = ExitCode.couldNotRun;
}
function isTokengateError(e) {
    return e instanceof TokengateError;
}

export { BadInputError, CouldNotRunError, ExitCode, TokengateError, isTokengateError };
