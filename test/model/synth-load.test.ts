import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, createWriteStream, mkdtempSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gguf } from "@huggingface/gguf";
import { getLlama, type Llama, type LlamaModel, TokenBias } from "node-llama-cpp";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GGML_TYPE_ID } from "../../src/model/ggml-types.js";
import { inspectModel, type ModelInfo } from "../../src/model/inspect.js";
import { createKernel } from "../../src/model/kernel.js";
import { freePort } from "../../src/target/port.js";
import { registerChild, stopChild } from "../../src/util/children.js";
import { runCommand } from "../../src/util/run-command.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

/**
 * The synthetic tiny model against the real consumers: llama-server (built from node-llama-cpp's llama.cpp source),
 * llama-quantize (same build) and node-llama-cpp's prebuilt CPU binding. Random weights produce random tokens; with
 * `ignore_eos` and the byte tokens banned (shared/FACTS.md) every request must produce exactly what was asked.
 */

const dir = mkdtempSync(join(tmpdir(), "tokengate-synth-load-"));
let serverBin: string;
let modelPath: string;
let info: ModelInfo;

beforeAll(async () => {
  serverBin = await findLlamaServerForTests();
  modelPath = await tinyModel();
  info = await inspectModel(modelPath);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("llama-server with the tiny synthetic model", () => {
  let child: ChildProcess | undefined;
  let base = "";
  const logFile = join(dir, "llama-server.log");

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const log = createWriteStream(logFile);
    child = spawn(
      serverBin,
      ["-m", modelPath, "--host", "127.0.0.1", "--port", String(port), "-t", "2", "-c", "1024", "-np", "1"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    registerChild(child);
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`llama-server exited with ${child.exitCode}:\n${readFileSync(logFile, "utf8").slice(-2000)}`);
      if (Date.now() > deadline)
        throw new Error(`llama-server not healthy after 60 s:\n${readFileSync(logFile, "utf8").slice(-2000)}`);
      try {
        const r = await request(`${base}/health`);
        const body = await r.body.text();
        if (r.statusCode === 200) break;
        void body;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
  });
  afterAll(async () => {
    if (child) await stopChild(child);
  });

  it("reads the model's shape and chat template", async () => {
    const r = await request(`${base}/props`);
    const props = (await r.body.json()) as { chat_template?: string; model_path?: string };
    expect(props.chat_template).toContain("[INST]");
    expect(props.model_path).toBe(modelPath);
    const models = (await (await request(`${base}/v1/models`)).body.json()) as {
      data: { meta?: { n_vocab?: number; n_embd?: number; n_params?: number } }[];
    };
    expect(models.data[0]?.meta).toMatchObject({ n_vocab: 32000, n_embd: 64, n_params: info.shape.params });
  });

  it("/completion generates exactly n_predict tokens, none of them banned", async () => {
    const logitBias = info.bannedTokenIds.map((id) => [id, false]);
    for (let i = 0; i < 4; i++) {
      const r = await request(`${base}/completion`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          prompt: `Request ${i}: tell me about the weather in Paris.`,
          n_predict: 24,
          ignore_eos: true,
          cache_prompt: false,
          n_probs: 0,
          return_tokens: true,
          logit_bias: logitBias,
        }),
      });
      const body = (await r.body.json()) as {
        tokens_predicted: number;
        tokens: number[];
        timings: { predicted_n: number };
      };
      expect(r.statusCode, JSON.stringify(body)).toBe(200);
      expect(body.tokens_predicted).toBe(24);
      expect(body.timings.predicted_n).toBe(24);
      expect(body.tokens.filter((t) => info.bannedTokenIds.includes(t))).toEqual([]);
    }
  });

  it("/v1/chat/completions (streaming) generates exactly max_tokens tokens", async () => {
    const logitBias = Object.fromEntries(info.bannedTokenIds.map((id) => [String(id), -100]));
    for (let i = 0; i < 4; i++) {
      const r = await request(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          messages: [
            { role: "system", content: "You are terse." },
            { role: "user", content: `Question ${i}: what is a GGUF file?` },
          ],
          max_tokens: 16,
          ignore_eos: true,
          stream: true,
          stream_options: { include_usage: true },
          logit_bias: logitBias,
        }),
      });
      const text = await r.body.text();
      expect(r.statusCode, text).toBe(200);
      expect(text).not.toContain('"error"');
      const events = text
        .split("\n")
        .filter((l) => l.startsWith("data: ") && l !== "data: [DONE]")
        .map(
          (l) =>
            JSON.parse(l.slice(6)) as {
              choices: { finish_reason?: string | null }[];
              usage?: { completion_tokens: number };
            },
        );
      expect(events.at(-1)?.usage?.completion_tokens).toBe(16);
      expect(events.some((e) => e.choices[0]?.finish_reason === "length")).toBe(true);
    }
  });
});

/** Reads one tensor's bytes from a GGUF file. */
async function tensorBytes(path: string, name: string, bytes: number): Promise<{ data: Buffer; dtype: number }> {
  const parsed = await gguf(path, { allowLocalFile: true });
  const t = parsed.tensorInfos.find((x) => x.name === name);
  if (!t) throw new Error(`${name} not in ${path}`);
  const data = Buffer.alloc(bytes);
  const fd = openSync(path, "r");
  try {
    readSync(fd, data, 0, bytes, Number(parsed.tensorDataOffset + t.offset));
  } finally {
    closeSync(fd);
  }
  return { data, dtype: t.dtype };
}

describe("llama-quantize agrees with our q8_0 / q4_0 encoder", () => {
  const k = createKernel();
  for (const [type, typeId, blockBytes] of [
    ["Q8_0", GGML_TYPE_ID.q8_0, 34],
    ["Q4_0", GGML_TYPE_ID.q4_0, 18],
  ] as const) {
    it(`${type}: llama-quantize's blocks for the tiny f16 model equal ours, byte for byte`, async () => {
      const quantize = join(dirname(serverBin), "llama-quantize");
      const out = join(dir, `tiny-${type}.gguf`);
      const r = await runCommand(quantize, [modelPath, out, type, "2"]);
      expect(r.code, r.tail.join("\n")).toBe(0);
      let compared = 0;
      for (const name of [
        "blk.0.attn_q.weight",
        "blk.1.attn_v.weight",
        "blk.0.ffn_up.weight",
        "blk.1.ffn_down.weight",
      ]) {
        const elements = name.includes("ffn") ? 64 * 256 : 64 * 64;
        const theirs = await tensorBytes(out, name, (elements / 32) * blockBytes);
        if (theirs.dtype !== typeId) continue; // llama-quantize may pick another type for some tensors
        const f16 = await tensorBytes(modelPath, name, elements * 2);
        const floats = Float32Array.from({ length: elements }, (_, i) => k.f16ToF32(f16.data.readUInt16LE(2 * i)));
        const ours = new Uint8Array((elements / 32) * blockBytes);
        type === "Q8_0" ? k.quantizeQ8_0(floats, elements, ours, 0) : k.quantizeQ4_0(floats, elements, ours, 0);
        expect(Buffer.from(ours).equals(theirs.data), name).toBe(true);
        compared++;
      }
      expect(compared).toBeGreaterThanOrEqual(3);
      // And llama.cpp reads its own output of our file as a valid model.
      expect((await inspectModel(out, { hash: false })).quantization).toBe(type.toLowerCase());
    });
  }
});

describe("node-llama-cpp with the tiny synthetic model", () => {
  let llama: Llama;
  let model: LlamaModel;
  beforeAll(async () => {
    llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" as never });
    model = await llama.loadModel({ modelPath });
  });
  afterAll(async () => {
    await model?.dispose();
    await llama?.dispose();
  });

  it("loads it and generates exactly the requested number of tokens, none of them banned", async () => {
    expect(model.trainContextSize).toBe(2048);
    expect(model.tokenizer("Hello world").length).toBeGreaterThan(1);
    // Threads set explicitly: node-llama-cpp's default (max(cores, 4)) is ~250x slower on 2 cores (FACTS.md).
    const context = await model.createContext({ threads: 2, contextSize: 512 });
    try {
      const bias = new TokenBias(model.tokenizer);
      for (const id of info.bannedTokenIds) bias.set(id as never, "never");
      const sequence = context.getSequence();
      const generated: number[] = [];
      for await (const token of sequence.evaluate(model.tokenize("Once upon a time"), {
        temperature: 0.8,
        tokenBias: bias,
        // Random weights may sample an end token, and evaluate() stops on one unless it is yielded (the default is
        // false): yield it and go on, as the in-process target does with ignore_eos (src/target/in-process/engine.ts).
        // Without this the test failed once in CI with 7 of 32 tokens.
        yieldEogToken: true,
      })) {
        generated.push(token as number);
        if (generated.length === 32) break;
      }
      expect(generated.length).toBe(32);
      expect(generated.filter((t) => info.bannedTokenIds.includes(t))).toEqual([]);
    } finally {
      await context.dispose();
    }
  });
});
