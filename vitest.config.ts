import { defineConfig } from "vitest/config";

// Tests are split by what they need (test/unit: pure; test/integration: real servers on port 0;
// test/model: real llama-server / node-llama-cpp with synthetic GGUF models). The machines have 2 cores and the
// model tests start servers, so files run one at a time: parallel files would only fight over the CPU.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
