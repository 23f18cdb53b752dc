import { type ParseArgsConfig, parseArgs } from "node:util";
import { BadInputError } from "../util/errors.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Strict flag parsing for one subcommand (node:util parseArgs). Unknown flags, missing values and stray positionals
 * become BadInputError naming the flag and pointing at `--help`.
 */
export function parseFlags<O extends Options>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    const err = e as { code?: string; message: string };
    const flag = /'(-[^']+)'/.exec(err.message)?.[1] ?? /(--?[\w-]+)/.exec(err.message)?.[1];
    throw new BadInputError(err.message.replace(/\. To specify.*$/s, "").replace(/\s+$/, ""), {
      subject: `tokengate ${command}${flag ? ` ${flag}` : ""}`,
      hint: `see \`tokengate ${command} --help\``,
    });
  }
}

export function intFlag(value: string | undefined, flag: string, example: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new BadInputError(`must be an integer >= ${min}, got "${value}"`, { subject: flag, hint: example });
  }
  return n;
}

export function oneOf<T extends string>(value: string | undefined, flag: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw new BadInputError(`must be one of ${choices.join(", ")}, got "${value}"`, {
      subject: flag,
      hint: `${flag} ${choices[0]}`,
    });
  }
  return value as T;
}
