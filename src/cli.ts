// Entry of the `tokengate` command: parse, run, map the outcome to an exit code. The one failure boundary of the CLI.
import { runCli } from "./cli/commands.js";
import { interruptExitCode, interruptSignal, stopAllChildren } from "./util/children.js";
import { ExitCode, isTokengateError } from "./util/errors.js";
import { watchParent } from "./util/parent-watch.js";
import { redact } from "./util/secrets.js";

async function main(): Promise<void> {
  // A run does not outlive the process that started it (npx's shell, a CI step): see util/parent-watch.ts.
  watchParent();
  let code: number;
  try {
    code = await runCli(process.argv.slice(2));
  } catch (e) {
    if (isTokengateError(e)) {
      process.stderr.write(`tokengate: ${redact(e.userMessage())}\n`);
      code = e.exitCode;
    } else {
      // A bug in tokengate, not bad input: say so, with the stack, so it can be reported.
      process.stderr.write(`tokengate: internal error (please report): ${redact((e as Error)?.stack ?? String(e))}\n`);
      code = ExitCode.couldNotRun;
    }
  }
  await stopAllChildren();
  // An interrupted run ends with the signal's conventional code, whatever it wrote (util/children.ts onInterrupt).
  const signal = interruptSignal();
  process.exitCode = signal ? interruptExitCode(signal) : code;
}

void main();
