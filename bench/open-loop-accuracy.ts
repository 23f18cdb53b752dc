/**
 * Open-loop accuracy: does tokengate's open loop (src/workload/schedulers/open-loop.ts, driven through the open-loop
 * test, src/suite/open-loop.ts, as `tokengate run` drives it) send at the rate it was asked for, and how late is each
 * request against its intended start? Against a fast endpoint: the minimal SSE server (bench/helpers/sse-server.ts)
 * in its own process, streaming 4 tokens per request in one write (`oneWrite`: the cheapest stream, so the scheduler
 * is what is measured). Each repeat first measures what this client and endpoint can do at all (a closed loop of 16
 * users, back to back), so a rate beyond that is known to be overload rather than inaccuracy. Medians of repeats.
 *
 *   npx tsx bench/open-loop-accuracy.ts [--repeats 3] [--duration 5]
 *
 * Achieved rate = measured arrivals sent / window (the schedule's own figure, ScheduleDigest.achievedRatePerS);
 * sent in window = those whose send fell inside the window / window; completed = records that succeeded / window. Lag = actual send - intended send, per request (the pacer's accuracy, plus any time the event
 * loop was busy with responses when an arrival was due).
 */
import { loadavg } from "node:os";
import { StreamClient } from "../src/client/stream-client.js";
import { openLoopTestSchema, requestSchema } from "../src/config/suite-schema.js";
import type { RequestRecord } from "../src/measure/record.js";
import { RecordSink } from "../src/measure/record-sink.js";
import type { SelfCheckResult } from "../src/measure/self-check.js";
import type { TestContext } from "../src/suite/context.js";
import type { ScheduleDigest } from "../src/suite/load-common.js";
import { driveClosed } from "../src/suite/load-common.js";
import { runOpenLoopTest } from "../src/suite/open-loop.js";
import { createRng } from "../src/util/rng.js";
import { spawnSseServer } from "./helpers/processes.js";
import { fmt, median, numArg, parseArgs, spread, table } from "./helpers/table.js";

interface Config {
  rate: number;
  pattern: "constant" | "poisson";
  maxConcurrency?: number;
}

const CONFIGS: Config[] = [
  { rate: 200, pattern: "constant" },
  { rate: 200, pattern: "poisson" },
  { rate: 2000, pattern: "constant" },
  { rate: 2000, pattern: "poisson" },
  // The project's cap on requests in flight (`maxConcurrency`, arrivals queue behind it and their lag shows the wait).
  { rate: 2000, pattern: "constant", maxConcurrency: 64 },
];

const label = (c: Config) => `${c.pattern} ${c.rate}/s${c.maxConcurrency ? ` cap ${c.maxConcurrency}` : ""}`;

/** Keeps the records in memory (the real sink writes NDJSON; here only send times matter). */
class MemorySink extends RecordSink {
  readonly records: RequestRecord[] = [];
  override write(record: RequestRecord): void {
    this.records.push(record);
  }
}

interface Run {
  config: string;
  repeat: number;
  schedule: ScheduleDigest;
  /**
   * Measured requests actually sent inside the measured window / window. The schedule's achieved rate counts every
   * measured arrival that was sent at all, also seconds late during the drain, so it cannot fall below the requested
   * rate unless arrivals are dropped; this one can.
   */
  sentInWindowPerS: number;
  completedPerS: number;
  failed: number;
  selfCheck: SelfCheckResult;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const repeats = numArg(args, "repeats", 3);
  const durationS = numArg(args, "duration", 5);
  const load0 = loadavg()[0]!;
  const t0 = Date.now();
  const server = await spawnSseServer({ tokenIntervalMs: 0, oneWrite: true });
  const runs: Run[] = [];
  const capacities: number[] = [];
  const context = (client: StreamClient, seed: number, sink: RecordSink = new RecordSink()): TestContext => ({
    testName: "open-loop-accuracy",
    endpoint: server.endpoint,
    client,
    sink,
    request: requestSchema.parse({ maxTokens: 4 }),
    rng: createRng(seed),
    signal: new AbortController().signal,
  });
  try {
    for (let r = 0; r < repeats; r++) {
      {
        const client = new StreamClient(server.endpoint, { stallTimeoutMs: 10_000 });
        const { outcome } = await driveClosed(context(client, 1), {
          users: 16,
          tasks: [{ name: "capacity", weight: 1, api: "openai-chat", promptTokens: 8, maxTokens: 4 }],
          thinkTime: { kind: "constant", seconds: 0 },
          durationMs: 2000,
          warmupMs: 500,
          drainTimeoutMs: 5000,
          trial: 0,
        });
        await client.close();
        const ok = outcome.records.filter((x) => x.measured && x.ok).length;
        capacities.push(ok / (outcome.windowNs / 1e9));
        process.stderr.write(
          `[${r + 1}/${repeats}] capacity (closed loop, 16 users): ${fmt(capacities.at(-1)!, 0)}/s\n`,
        );
      }
      for (const c of CONFIGS) {
        const client = new StreamClient(server.endpoint, { stallTimeoutMs: 10_000 });
        const test = openLoopTestSchema.parse({
          kind: "open-loop",
          rate: c.rate,
          arrivals: c.pattern,
          durationS,
          warmupS: 1,
          promptTokens: 8,
          drainTimeoutS: 10,
          ...(c.maxConcurrency ? { maxConcurrency: c.maxConcurrency } : {}),
        });
        const sink = new MemorySink();
        const result = await runOpenLoopTest(context(client, 100 + r, sink), test, 1);
        await client.close();
        const measured = sink.records.filter((x) => x.measured);
        const windowStartNs = Math.min(...measured.map((x) => x.intendedStartNs));
        const windowEndNs = windowStartNs + result.windowS * 1e9;
        const extra = result.extra as { runs: Array<{ schedule: ScheduleDigest }>; selfCheck: SelfCheckResult };
        const schedule = extra.runs[0]!.schedule;
        const run: Run = {
          config: label(c),
          repeat: r,
          schedule,
          sentInWindowPerS: measured.filter((x) => x.startNs <= windowEndNs).length / result.windowS,
          completedPerS: result.requests.succeeded / result.windowS,
          failed: result.requests.failed,
          selfCheck: extra.selfCheck,
        };
        runs.push(run);
        process.stderr.write(
          `[${r + 1}/${repeats}] ${run.config}: achieved ${fmt(schedule.achievedRatePerS, 1)}/s, lag p50 ${fmt(schedule.lagMs.p50, 3)} p99 ${fmt(schedule.lagMs.p99, 3)} ms, event loop max ${fmt(extra.selfCheck.eventLoopDelayMs.max, 0)} ms, ${run.failed} failed\n`,
        );
      }
    }
  } finally {
    await server.stop();
  }

  const rows: string[][] = [];
  const headline: string[] = [];
  for (const c of CONFIGS) {
    {
      const rate = c.rate;
      const rs = runs.filter((x) => x.config === label(c));
      const s = rs.map((x) => x.schedule);
      rows.push([
        String(rate),
        `${c.pattern}${c.maxConcurrency ? `, cap ${c.maxConcurrency}` : ""}`,
        spread(
          s.map((x) => x.achievedRatePerS),
          1,
        ),
        spread(
          s.map((x) => (100 * x.achievedRatePerS) / rate),
          2,
        ),
        spread(
          rs.map((x) => x.sentInWindowPerS),
          1,
        ),
        spread(
          rs.map((x) => x.completedPerS),
          1,
        ),
        spread(
          s.map((x) => x.lagMs.p50),
          3,
        ),
        spread(
          s.map((x) => x.lagMs.p99),
          3,
        ),
        spread(
          s.map((x) => x.lagMs.max),
          1,
        ),
        spread(
          s.map((x) => x.late),
          0,
        ),
        spread(
          rs.map((x) => x.failed + x.schedule.dropped + x.schedule.unsent),
          0,
        ),
        spread(
          rs.map((x) => 100 * x.selfCheck.cpuCoreFraction),
          0,
        ),
        spread(
          rs.map((x) => x.selfCheck.eventLoopDelayMs.p99),
          1,
        ),
        spread(
          rs.map((x) => x.selfCheck.eventLoopDelayMs.max),
          0,
        ),
        `${rs.filter((x) => x.selfCheck.clientBound).length}/${rs.length}`,
      ]);
      headline.push(
        `${label(c)}: achieved ${fmt(median(s.map((x) => x.achievedRatePerS)), 1)}/s (${fmt(median(s.map((x) => (100 * x.achievedRatePerS) / rate)), 2)}%), sent inside the window ${fmt(median(rs.map((x) => x.sentInWindowPerS)), 1)}/s, schedule lag p99 ${fmt(median(s.map((x) => x.lagMs.p99)), 3)} ms`,
      );
    }
  }
  const out = [
    `open-loop-accuracy: ${repeats} repeats x ${durationS} s (after 1 s warm-up), 4 streamed tokens per request, medians (min–max); Node ${process.version}; load average ${fmt(load0, 1)} at start, ${fmt(loadavg()[0]!, 1)} at end; ${fmt((Date.now() - t0) / 1000, 0)} s`,
    `capacity of this client + endpoint (closed loop, 16 users back to back): ${spread(capacities, 0)} requests/s`,
    "",
    table(
      [
        "requested/s",
        "arrivals",
        "achieved/s",
        "achieved %",
        "sent in window/s",
        "completed/s",
        "lag p50 ms",
        "lag p99 ms",
        "lag max ms",
        "late (>10 ms)",
        "failed+dropped",
        "client CPU % core",
        "event-loop p99 ms",
        "event-loop max ms",
        "client-bound",
      ],
      rows,
    ),
    "",
    ...headline,
  ];
  process.stdout.write(`${out.join("\n")}\n`);
}

await main();
