import { formatNumber, formatPercent } from "../analysis/format.js";
import type { MachineLoad } from "../measure/machine-load.js";

/** One line on how busy the machine was with other work (measure/machine-load.ts): a slow run on a busy machine says so. */
export function machineLine(m: MachineLoad): string {
  const pct = (x: number) => formatPercent(x);
  const steal = m.stealShare > 0.005 ? `, of which steal ${pct(m.stealShare)}` : "";
  const unknown =
    m.serverUnknown !== undefined
      ? ` Other work includes the server under test: its process was not found (${m.serverUnknown}), so this share is not judged as a busy machine.`
      : "";
  return (
    `Machine (${m.cpus} CPUs): other work ${pct(m.otherShare)} of the CPU time (max ${pct(m.otherShareMax)} over 1 s${steal}), ` +
    `${m.serverUnknown !== undefined ? "tokengate" : "tokengate and its server"} ${pct(m.ownShare)}; load average ${formatNumber(m.loadavg1[0])} → ${formatNumber(m.loadavg1[1])}.${unknown}`
  );
}
