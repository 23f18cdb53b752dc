/**
 * A reproduction (found by bench/open-loop-accuracy.ts), kept as a check: does tokengate's open loop
 * (src/workload/schedulers/open-loop.ts) let the event loop run while it is behind schedule?
 *
 *   npx tsx bench/open-loop-starvation.ts [--rate 2000] [--send-ms 0.7] [--duration 2]
 *
 * The sender's synchronous part (building and handing a request to undici; a new connection costs more) takes
 * `send-ms`, longer than the gap between arrivals, so the dispatcher is always behind. Pacer.until() then returns
 * without a macrotask turn (the intended time has passed) and the dispatch loop runs on microtasks only: no timers,
 * no I/O, no response is read (so no connection is freed, and each arrival opens another one) until the schedule
 * ends. Each request here completes on the next `setImmediate`, so `maxInFlight` equal to every arrival means no
 * completion ran during the schedule. A loop that yields prints a first-timer delay of a few ms.
 */
import { nowNs } from "../src/measure/clock.js";
import type { RequestRecord } from "../src/measure/record.js";
import { createRng } from "../src/util/rng.js";
import { createArrivals } from "../src/workload/schedulers/arrivals.js";
import { runOpenLoop } from "../src/workload/schedulers/open-loop.js";
import { fmt, numArg, parseArgs } from "./helpers/table.js";

const args = parseArgs(process.argv.slice(2));
const rate = numArg(args, "rate", 2000);
const sendMs = numArg(args, "send-ms", 0.7);
const durationS = numArg(args, "duration", 2);

const t0 = performance.now();
let firstTimerMs = Number.NaN;
const probe = setInterval(() => {
  if (Number.isNaN(firstTimerMs)) firstTimerMs = performance.now() - t0;
}, 1);
const outcome = await runOpenLoop({
  arrivals: createArrivals({ pattern: "constant", ratePerS: rate }, createRng(1)),
  durationMs: durationS * 1000,
  signal: new AbortController().signal,
  pick: () => 0,
  send: (job) => {
    const until = performance.now() + sendMs;
    while (performance.now() < until) {
      // the synchronous part of a send
    }
    const startNs = nowNs();
    const record = {
      ok: true,
      measured: job.measured,
      intendedStartNs: job.intendedStartNs ?? startNs,
      startNs,
    } as RequestRecord;
    return new Promise((resolve) => setImmediate(() => resolve({ ...record, endNs: nowNs() })));
  },
});
clearInterval(probe);
const scheduleMs = performance.now() - t0;
const starved = firstTimerMs > scheduleMs / 2;
process.stdout.write(
  `${rate}/s, send ${sendMs} ms (gap ${fmt(1000 / rate, 2)} ms): schedule ran ${fmt(scheduleMs, 0)} ms; first 1 ms timer fired at ${fmt(firstTimerMs, 0)} ms; max in flight ${outcome.maxInFlight} of ${outcome.records.length}\n` +
    `event loop starved while behind schedule: ${starved ? "YES" : "no"}\n`,
);
