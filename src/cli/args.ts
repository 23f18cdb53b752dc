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

export function intFlag(
  value: string | undefined,
  flag: string,
  example: string,
  min = 1,
  limit?: { max: number; why: string },
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || (limit !== undefined && n > limit.max)) {
    const range = limit ? `from ${min} to ${limit.max} (${limit.why})` : `>= ${min}`;
    throw new BadInputError(`must be an integer ${range}, got "${value}"`, { subject: flag, hint: example });
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

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration flag in milliseconds: `120s`, `2m`, `1.5s`, `500ms`, `1h`, or a bare number of milliseconds (`90000`).
 * At most `maxMs`; anything else (`2 minutes`, `-5s`, `5x`) is a BadInputError naming the flag.
 */
export function durationFlag(
  value: string | undefined,
  flag: string,
  example: string,
  maxMs = 24 * 3_600_000,
): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/i.exec(value);
  const bad = (why: string): never => {
    throw new BadInputError(`${why}, got ${JSON.stringify(value)}`, {
      subject: flag,
      hint: `${example} (units: ms, s, m, h; a bare number is milliseconds)`,
    });
  };
  if (!m) return bad("must be a duration such as 120s, 2m or 500ms");
  const ms = Math.round(Number(m[1]) * DURATION_UNITS_MS[(m[2] ?? "ms").toLowerCase()]!);
  if (ms > maxMs) return bad(`must be at most ${maxMs / 60_000} minutes`);
  return ms;
}
