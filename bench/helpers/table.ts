import { markdownTable } from "markdown-table";

/** Small statistics and printing helpers for the benchmarks (medians of repeats: the machine is shared and noisy). */

export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of raw values. */
export function percentile(values: number[], p: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]!;
}

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return "n/a";
  return x.toFixed(digits);
}

/** "median (min-max)" of repeats. */
export function spread(values: number[], digits = 2): string {
  const v = values.filter(Number.isFinite);
  if (v.length === 0) return "n/a";
  if (v.length === 1) return fmt(v[0]!, digits);
  return `${fmt(median(v), digits)} (${fmt(Math.min(...v), digits)}–${fmt(Math.max(...v), digits)})`;
}

export function table(header: string[], rows: string[][]): string {
  return markdownTable([header, ...rows]);
}

/** Parses `--name value` / `--flag` arguments into a map (benchmarks take a few numeric knobs). */
export function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) out.set(a.slice(2), argv[++i]!);
    else out.set(a.slice(2), "true");
  }
  return out;
}

export function numArg(args: Map<string, string>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}
