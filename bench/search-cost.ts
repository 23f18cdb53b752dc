/**
 * Search cost: probe steps and wall time of tokengate's maximum-load search (src/suite/max-load.ts: doubling, then
 * bisection, then a confirming repeat) vs a 10-step linear sweep to the same boundary, against a server whose capacity
 * is known: the minimal SSE server (bench/helpers/sse-server.ts) in processor-sharing mode, in its own process.
 *
 *   npx tsx bench/search-cost.ts [--repeats 3] [--capacity 4] [--bound 770]
 *
 * The server streams `capacity / tokenIntervalMs` tokens per ms in total and shares them among the requests in flight,
 * so with c users back to back each request of n tokens takes about (n + 1) x 10 ms x max(1, c / capacity): latency
 * grows linearly beyond `capacity`, like llama-server with `--parallel capacity` once its slots are full. With an SLO
 * of e2e p95 <= bound, the boundary is about c* = capacity x bound / ((n + 1) x 10 ms) users.
 *
 * The sweep is the project's own ramp (src/suite/ramp.ts) over loads step, 2 x step, ... with step = round(B / 10) for
 * the boundary B the search found (so it is 10 steps to the boundary, ±10% precision, and it stops at its first
 * failing step). Knowing B in advance favours the sweep: a real sweep would have to guess its range.
 */
import { loadavg } from "node:os";
import { StreamClient } from "../src/client/stream-client.js";
import { maxLoadTestSchema, rampTestSchema, requestSchema } from "../src/config/suite-schema.js";
import { RecordSink } from "../src/measure/record-sink.js";
import type { TestContext } from "../src/suite/context.js";
import type { StepDigest } from "../src/suite/load-common.js";
import { runMaxLoadTest, type SearchOutcome } from "../src/suite/max-load.js";
import { runRampTest } from "../src/suite/ramp.js";
import { createRng } from "../src/util/rng.js";
import { spawnSseServer } from "./helpers/processes.js";
import { fmt, median, numArg, parseArgs, spread, table } from "./helpers/table.js";

const TOKENS = 10;
const TOKEN_MS = 10;

interface Repeat {
  search: { probes: number; wallS: number; boundary?: number; minFailing?: number; confirmed: boolean; path: string };
  sweep: { probes: number; wallS: number; boundary?: number; step: number; path: string };
  oracleSweepProbes: number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const repeats = numArg(args, "repeats", 3);
  const capacity = numArg(args, "capacity", 4);
  const boundMs = numArg(args, "bound", 770);
  const expected = (capacity * boundMs) / ((TOKENS + 1) * TOKEN_MS);
  const load0 = loadavg()[0]!;
  const t0 = Date.now();
  const server = await spawnSseServer({ tokenIntervalMs: TOKEN_MS, capacity });
  const slo = { e2eMs: boundMs, percentile: 95, maxErrorRate: 0.01 };
  const step = { stepDurationS: 2, stepWarmupS: 0.5, drainTimeoutS: 5, promptTokens: 8 };
  const results: Repeat[] = [];
  const context = (client: StreamClient, name: string, seed: number): TestContext => ({
    testName: name,
    endpoint: server.endpoint,
    client,
    sink: new RecordSink(),
    request: requestSchema.parse({ maxTokens: TOKENS }),
    rng: createRng(seed),
    signal: new AbortController().signal,
  });
  try {
    for (let r = 0; r < repeats; r++) {
      const client = new StreamClient(server.endpoint, { stallTimeoutMs: 30_000 });
      const s0 = performance.now();
      const searchResult = await runMaxLoadTest(
        context(client, "max-load", 10 + r),
        maxLoadTestSchema.parse({ kind: "max-load", ...step, slo, start: 1, max: 256, tolerance: 0.1, confirm: true }),
        1,
      );
      const searchWallS = (performance.now() - s0) / 1000;
      const search = (searchResult.extra!.searches as SearchOutcome[])[0]!;
      const boundary = search.maxPassing ?? 1;
      const sweepStep = Math.max(1, Math.round(boundary / 10));
      const s1 = performance.now();
      const sweepResult = await runRampTest(
        context(client, "linear-sweep", 20 + r),
        rampTestSchema.parse({
          kind: "ramp",
          ...step,
          slo,
          range: { start: sweepStep, stop: 256, step: sweepStep },
          stopOnSloBreach: true,
          stopOnSaturation: false,
        }),
        1,
      );
      const sweepWallS = (performance.now() - s1) / 1000;
      await client.close();
      const steps = sweepResult.extra!.steps as StepDigest[];
      const passing = steps.filter((s) => s.slo?.pass).map((s) => s.load);
      const rep: Repeat = {
        search: {
          probes: search.probes.length,
          wallS: searchWallS,
          ...(search.maxPassing === undefined ? {} : { boundary: search.maxPassing }),
          ...(search.minFailing === undefined ? {} : { minFailing: search.minFailing }),
          confirmed: search.confirmed,
          path: search.probes.map((p) => `${p.load}${p.pass ? "✓" : "✗"}`).join(" "),
        },
        sweep: {
          probes: steps.length,
          wallS: sweepWallS,
          ...(passing.length ? { boundary: Math.max(...passing) } : {}),
          step: sweepStep,
          path: steps.map((s) => `${s.load}${s.slo?.pass ? "✓" : "✗"}`).join(" "),
        },
        oracleSweepProbes: search.linearSweepProbes,
      };
      results.push(rep);
      process.stderr.write(
        `[${r + 1}/${repeats}] search: ${rep.search.path} -> ${rep.search.boundary} in ${fmt(searchWallS, 1)} s; sweep: ${rep.sweep.path} -> ${rep.sweep.boundary} in ${fmt(sweepWallS, 1)} s\n`,
      );
    }
  } finally {
    await server.stop();
  }

  const rows = results.map((x, i) => [
    String(i + 1),
    `${x.search.boundary ?? "none"} (${x.search.confirmed ? "confirmed" : "not confirmed"})`,
    String(x.search.probes),
    fmt(x.search.wallS, 1),
    x.search.path,
    `${x.sweep.boundary ?? "none"} (step ${x.sweep.step})`,
    String(x.sweep.probes),
    fmt(x.sweep.wallS, 1),
    x.sweep.path,
  ]);
  const probeRatio = results.map((x) => x.search.probes / x.sweep.probes);
  const wallRatio = results.map((x) => x.search.wallS / x.sweep.wallS);
  const agree = results.map((x) =>
    x.search.boundary && x.sweep.boundary ? Math.abs(x.search.boundary - x.sweep.boundary) / x.sweep.boundary : NaN,
  );
  const out = [
    `search-cost: ${repeats} repeats; processor-sharing SSE server, capacity ${capacity}, ${TOKENS} tokens x ${TOKEN_MS} ms; SLO e2e p95 <= ${boundMs} ms, error rate <= 1%; steps of 0.5 s warm-up + 2 s measured; expected boundary ~${fmt(expected, 1)} users; Node ${process.version}; load average ${fmt(load0, 1)} at start, ${fmt(loadavg()[0]!, 1)} at end; ${fmt((Date.now() - t0) / 1000, 0)} s`,
    "",
    table(
      [
        "repeat",
        "search boundary",
        "search probes",
        "search wall s",
        "search path",
        "sweep boundary",
        "sweep probes",
        "sweep wall s",
        "sweep path",
      ],
      rows,
    ),
    "",
    `search / 10-step sweep: probes ${spread(probeRatio, 2)}x, wall time ${spread(wallRatio, 2)}x (median (min–max) of ${repeats}); boundaries differ by ${spread(
      agree.map((a) => 100 * a),
      0,
    )}% (sweep precision ±10%)`,
    `the search's own oracle count of a sweep at its final precision (SearchOutcome.linearSweepProbes): ${spread(
      results.map((x) => x.oracleSweepProbes),
      0,
    )} probes`,
    `fewer probes than the sweep: ${median(probeRatio) < 1 ? "yes" : "NO"}`,
  ];
  process.stdout.write(`${out.join("\n")}\n`);
}

await main();
