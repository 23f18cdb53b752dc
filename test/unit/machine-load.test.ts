import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { processTicks, startMachineSampler } from "../../src/measure/machine-load.js";

/** CPU seconds a share of the machine stands for over the window. */
const cpuSeconds = (share: number, cpus: number, wallS: number) => share * cpus * wallS;

/** Burns CPU in this process for `ms` of its own CPU time. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  while ((process.cpuUsage(start).user + process.cpuUsage(start).system) / 1000 < ms) x += Math.sqrt(x + 1);
}

/** A real neighbour: another process that spins for `ms` of its own CPU time, then exits. */
function neighbour(ms: number) {
  return spawn(process.execPath, [
    "-e",
    `const s=process.cpuUsage();let x=0;while((process.cpuUsage(s).user+process.cpuUsage(s).system)/1000<${ms})x+=Math.sqrt(x+1);`,
  ]);
}

describe.runIf(process.platform === "linux")("machine load from /proc", () => {
  it("counts this process's CPU as its own", () => {
    const s = startMachineSampler(() => [process.pid]);
    burn(600);
    const load = s.stop()!;
    expect(load.cpus).toBeGreaterThan(0);
    // At least the 600 ms burned (ticks are 10 ms), and not more than this process could have used.
    expect(cpuSeconds(load.ownShare, load.cpus, load.wallS)).toBeGreaterThan(0.5);
    expect(load.ownShare).toBeLessThanOrEqual(1);
    expect(s.stop()).toBe(load);
  });

  it("counts another process as other work, unless it is named as ours", async () => {
    const other = startMachineSampler(() => [process.pid]);
    const child = neighbour(700);
    await once(child, "exit");
    const a = other.stop()!;
    expect(cpuSeconds(a.otherShare, a.cpus, a.wallS)).toBeGreaterThan(0.55);
    expect(a.otherShareMax).toBeGreaterThanOrEqual(a.otherShare);

    const child2 = neighbour(700);
    const pid = child2.pid!;
    const ours = startMachineSampler(() => [process.pid, pid]);
    const ticksBefore = processTicks(pid);
    await once(child2, "exit");
    const b = ours.stop()!;
    // The child's time up to its exit is ours (the last sample reads it while it can); nothing is negative.
    expect(ticksBefore).toBeGreaterThanOrEqual(0);
    expect(b.ownShare).toBeGreaterThanOrEqual(0);
    expect(b.otherShare).toBeGreaterThanOrEqual(0);
  });
});

describe("machine line in report.md and report.html", () => {
  it("says how much of the machine other work took, with steal when there was any", async () => {
    const { machineLine } = await import("../../src/report/machine-line.js");
    const m = {
      cpus: 2,
      wallS: 12,
      ownShare: 0.61,
      otherShare: 0.05,
      stealShare: 0,
      otherShareMax: 0.12,
      loadavg1: [1.2, 2] as [number, number],
    };
    expect(machineLine(m)).toBe(
      "Machine (2 CPUs): other work 5% of the CPU time (max 12% over 1 s), tokengate and its server 61%; load average 1.2 → 2.",
    );
    expect(machineLine({ ...m, otherShare: 0.4, otherShareMax: 0.5, stealShare: 0.3 })).toContain(
      "other work 40% of the CPU time (max 50% over 1 s, of which steal 30%)",
    );
  });
});
