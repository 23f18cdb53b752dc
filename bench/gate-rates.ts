/**
 * The gate's rates from real `tokengate ab` runs (docs/verdicts.md "Same-runner A/B: validation"): A/A false fail and
 * warn rates, detection of the real slowdown, detection of an exact 10% slowdown applied to A/A pairs, and the minimum
 * detectable effect per gated metric, at n pairs and at the pairs that fit a 5-minute gate.
 *
 *   npx tsx bench/gate-rates.ts --aa DIR[,DIR...] --ab DIR[,DIR...] --n 3 --n-budget 6 [--out rates.json]
 *
 * Each DIR is a `tokengate ab` output folder; pair k is runs/A-k with runs/B-k (they ran next to each other).
 * Prints a table; with --out writes the figures as JSON (test/unit/gate-rates.test.ts recomputes them from the
 * committed folders and checks they agree).
 */
import { writeFileSync } from "node:fs";
import { computeGateRates, formatGateRates } from "./helpers/gate-rates.js";
import { numArg, parseArgs } from "./helpers/table.js";

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const list = (k: string) => (args.get(k) ?? "").split(",").filter((s) => s !== "");
  const rates = await computeGateRates({
    aa: list("aa"),
    ab: list("ab"),
    n: numArg(args, "n", 3),
    nBudget: numArg(args, "n-budget", 6),
  });
  process.stdout.write(`${formatGateRates(rates)}\n`);
  const out = args.get("out");
  if (out) writeFileSync(out, `${JSON.stringify(rates, null, 2)}\n`);
}

void main();
