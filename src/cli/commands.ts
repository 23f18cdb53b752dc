import { ExitCode, type ExitCodeValue } from "../util/errors.js";
import { runAbCommand } from "./ab-command.js";
import {
  HELP,
  runBaselineCommand,
  runBuildCommand,
  runCompareCommand,
  runRunCommand,
  runSynthCommand,
  runValidateCommand,
} from "./handlers.js";

type Handler = (argv: string[]) => Promise<ExitCodeValue>;

const COMMANDS: Record<string, Handler> = {
  run: runRunCommand,
  ab: runAbCommand,
  compare: runCompareCommand,
  "baseline update": runBaselineCommand,
  "model synth": runSynthCommand,
  "server build": runBuildCommand,
  validate: runValidateCommand,
};

/** Finds the (one- or two-word) subcommand and runs it. Returns the process exit code. */
export async function runCli(argv: string[]): Promise<ExitCodeValue> {
  const two = argv.slice(0, 2).join(" ");
  if (COMMANDS[two]) return COMMANDS[two](argv.slice(2));
  const one = argv[0] ?? "";
  if (COMMANDS[one]) return COMMANDS[one](argv.slice(1));
  // A command group asked for help (`tokengate model --help`): its subcommands, from the same table.
  const group = Object.keys(COMMANDS).filter((c) => c.startsWith(`${one} `));
  if (group.length > 0 && (argv[1] === undefined || argv[1] === "--help" || argv[1] === "-h")) {
    const list = group.map((c) => `tokengate ${c}`).join(", ");
    if (argv[1] === undefined) {
      process.stderr.write(`tokengate ${one}: which subcommand? ${list} (see \`tokengate ${group[0]} --help\`)\n`);
      return ExitCode.badInput;
    }
    process.stdout.write(`tokengate ${one}: ${list} (see \`tokengate ${group[0]} --help\`)\n`);
    return ExitCode.pass;
  }
  if (one === "" || one === "help" || one === "--help" || one === "-h") {
    process.stdout.write(HELP);
    return ExitCode.pass;
  }
  if (one === "--version" || one === "-v") {
    const { packageInfo } = await import("../util/package-root.js");
    process.stdout.write(`${packageInfo().version}\n`);
    return ExitCode.pass;
  }
  process.stderr.write(`tokengate: unknown command "${argv.slice(0, 2).join(" ")}"\n\n${HELP}`);
  return ExitCode.badInput;
}
