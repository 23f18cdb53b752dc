import type { StreamClient } from "../client/stream-client.js";
import type { RequestDefaults } from "../config/suite-schema.js";
import type { RequestRecord } from "../measure/record.js";
import type { RecordSink } from "../measure/record-sink.js";
import type { Endpoint } from "../target/types.js";
import { BadInputError } from "../util/errors.js";
import type { Rng } from "../util/rng.js";
import type { GenerationRequest } from "../workload/request-builder.js";
import type { ProbeReset } from "./probe-reset.js";

/** Everything a test needs to send requests; built by the pipeline. Tests record, they never format. */
export interface TestContext {
  testName: string;
  endpoint: Endpoint;
  client: StreamClient;
  sink: RecordSink;
  request: RequestDefaults;
  rng: Rng;
  /** Fires when the run must stop: the server died, or the user interrupted. */
  signal: AbortSignal;
  /** Progress: called after every finished request with (done, total). */
  onRequestDone?: (done: number, total: number) => void;
  /** Puts the server back to an idle, clean state before each load probe (ramp step, max-load probe); see probe-reset.ts. */
  probeReset?: ProbeReset;
}

export interface SendArgs {
  scenario: string;
  trial: number;
  measured: boolean;
  prompt: string;
  api?: GenerationRequest["api"];
  maxTokens?: number;
  intendedStartNs?: number;
  /** Cancels this request (default: the run's signal). Schedulers pass their own, which the run's signal also ends. */
  signal?: AbortSignal;
  /** Mark the record as sent by an open loop. */
  openLoop?: boolean;
}

/** Sends one request with the suite's defaults, writes its record to disk, returns it. */
export async function sendAndRecord(ctx: TestContext, args: SendArgs): Promise<RequestRecord> {
  const r = ctx.request;
  const gen: GenerationRequest = {
    api: args.api ?? r.api,
    prompt: args.prompt,
    maxTokens: args.maxTokens ?? r.maxTokens,
    ignoreEos: r.ignoreEos,
    temperature: r.temperature,
    ...(r.seed === undefined ? {} : { seed: r.seed }),
    cachePrompt: r.cachePrompt,
    ...(r.extraBody ? { extraBody: r.extraBody } : {}),
  };
  const record = await ctx.client.send(
    gen,
    {
      id: ctx.sink.newId(),
      test: ctx.testName,
      scenario: args.scenario,
      trial: args.trial,
      measured: args.measured,
      ...(args.intendedStartNs === undefined ? {} : { intendedStartNs: args.intendedStartNs }),
    },
    args.signal ?? ctx.signal,
  );
  if (args.openLoop) record.openLoop = true;
  ctx.sink.write(record);
  return record;
}

/**
 * Runs `total` jobs with at most `concurrency` in flight (a closed pool: a worker starts the next job when its
 * previous one ends). Stops starting new jobs once `signal` fires; jobs in flight are cancelled by the client.
 */
export async function runPool(
  total: number,
  concurrency: number,
  job: (index: number) => Promise<unknown>,
  signal: AbortSignal,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (!signal.aborted) {
      const i = next++;
      if (i >= total) return;
      await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}

/** The API a test sends; a target that cannot serve it is a bad suite, said before anything runs. */
export function apiFor(ctx: TestContext, wanted?: GenerationRequest["api"]): GenerationRequest["api"] {
  const api = wanted ?? ctx.request.api;
  if (!ctx.endpoint.apis.includes(api)) {
    throw new BadInputError(
      `the target does not serve the \`${api}\` API (it serves ${ctx.endpoint.apis.join(", ")})`,
      {
        subject: `tests: ${ctx.testName}: api`,
        hint: `use api: ${ctx.endpoint.apis[ctx.endpoint.apis.length - 1]} (in-process serves only the OpenAI APIs)`,
      },
    );
  }
  return api;
}
