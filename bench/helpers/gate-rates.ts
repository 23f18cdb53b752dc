import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { loadResults } from "../../src/analysis/baseline.js";
import { formatPercent } from "../../src/analysis/format.js";
import { type AbValidationReport, type Pair, validateAb } from "../../src/analysis/validate-ab.js";
import { table } from "./table.js";

/** Pairs of `tokengate ab` folders: pair k is runs/A-k with runs/B-k. */
export async function loadPairs(dirs: readonly string[]): Promise<Pair[]> {
  const pairs: Pair[] = [];
  for (const dir of dirs) {
    for (let k = 1; ; k++) {
      const a = join(dir, "runs", `A-${k}`, "results.json");
      const b = join(dir, "runs", `B-${k}`, "results.json");
      if (!existsSync(a) || !existsSync(b)) break;
      pairs.push({ a: await loadResults(a), b: await loadResults(b), label: `${basename(dir)} pair ${k}` });
    }
  }
  return pairs;
}

export interface GateRates {
  aaPairs: number;
  abPairs: number;
  /** A/A gates of n pairs: false fail and warn rates, and the detectable change. */
  aa: AbValidationReport;
  /** The same A/A gates with `policy.inconclusive: warn` (an inconclusive regression-sized change warns). */
  aaStrict: AbValidationReport;
  /** A/A gates of n pairs with arm B made exactly 10% worse. */
  shift10: AbValidationReport;
  /** Real A/B gates of n pairs (absent without --ab). */
  ab?: AbValidationReport;
  /** A/A gates of nBudget pairs (what fits a 5-minute gate): the detectable change there. */
  budget?: AbValidationReport;
}

export async function computeGateRates(input: {
  aa: readonly string[];
  ab: readonly string[];
  n: number;
  nBudget: number;
}): Promise<GateRates> {
  const aaPairs = await loadPairs(input.aa);
  const abPairs = await loadPairs(input.ab);
  const out: GateRates = {
    aaPairs: aaPairs.length,
    abPairs: abPairs.length,
    aa: validateAb({ pairs: aaPairs, n: input.n }),
    aaStrict: validateAb({ pairs: aaPairs, n: input.n, policy: { inconclusive: "warn" } }),
    shift10: validateAb({ pairs: aaPairs, n: input.n, shift: 0.1 }),
  };
  if (abPairs.length >= input.n) out.ab = validateAb({ pairs: abPairs, n: input.n });
  if (aaPairs.length >= input.nBudget && input.nBudget !== input.n) {
    out.budget = validateAb({ pairs: aaPairs, n: input.nBudget });
  }
  return out;
}

export function formatGateRates(r: GateRates): string {
  const row = (name: string, v: AbValidationReport | undefined): string[] =>
    v
      ? [
          name,
          String(v.n),
          `${v.gates}${v.exhaustive ? " (all)" : ""}`,
          formatPercent(v.failRate),
          formatPercent(v.warnRate),
          formatPercent(v.warnOrFailRate),
        ]
      : [name, "", "", "", "", ""];
  const rates = table(
    ["gates", "pairs", "gates judged", "fail", "warn", "warn or fail"],
    [
      row(`A/A (${r.aaPairs} pairs in the pool)`, r.aa),
      row("A/A, inconclusive: warn", r.aaStrict),
      row("A/A + exact 10% slowdown on B", r.shift10),
      row(`real A/B (${r.abPairs} pairs in the pool)`, r.ab),
      ...(r.budget ? [row("A/A, 5-minute budget", r.budget)] : []),
    ],
  );
  const metrics = Object.keys(r.aa.detectable).sort();
  const mde = table(
    ["metric", `detectable at ${r.aa.n} pairs`, ...(r.budget ? [`at ${r.budget.n} pairs`] : [])],
    metrics.map((m) => [
      m,
      formatPercent(r.aa.detectable[m]!),
      ...(r.budget ? [formatPercent(r.budget.detectable[m] ?? Number.NaN)] : []),
    ]),
  );
  return `${rates}\n\nMinimum detectable effect (median over the A/A gates; 95% power, alpha / metrics of the test):\n\n${mde}`;
}
