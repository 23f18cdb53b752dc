import { describe, expect, it } from "vitest";
import {
  NO_RESET_PROVIDED,
  noProbeReset,
  type ProbeResetOutcome,
  probeResetFor,
  summarizeResets,
} from "../../src/suite/probe-reset.js";
import type { Endpoint } from "../../src/target/types.js";

const endpoint: Endpoint = { baseUrl: "http://127.0.0.1:9", apis: ["openai-chat"], modelName: "m", bannedTokenIds: [] };

describe("probe resets", () => {
  it("by target kind: llama-server and external can reset, in-process only waits, and says so", () => {
    expect(probeResetFor("llama-server").canReset).toBe(true);
    expect(probeResetFor("external").canReset).toBe(true);
    const inProcess = probeResetFor("in-process");
    expect(inProcess.canReset).toBe(false);
    expect(inProcess.method).toMatch(/cannot be cleared/);
  });

  it("without a reset the outcome says not reset, and claims nothing about idleness", async () => {
    const o = await noProbeReset("no API").beforeProbe(endpoint, new AbortController().signal);
    expect(o).toEqual({ reset: false, method: "none", waitedMs: 0, detail: "not reset: no API" });
    const d = await NO_RESET_PROVIDED.beforeProbe(endpoint, new AbortController().signal);
    expect(d.reset).toBe(false);
    expect(d.idle).toBeUndefined();
  });

  it("summarises a test's probes: how many were reset, started busy, or unknown, and the first problem", () => {
    const ok: ProbeResetOutcome = { reset: true, idle: true, method: "m", detail: "erased 2 slots", waitedMs: 3 };
    const busy: ProbeResetOutcome = { ...ok, reset: false, idle: false, detail: "still busy after 30 s" };
    const unknown: ProbeResetOutcome = { reset: false, method: "m", detail: "not reset: no slots API", waitedMs: 0 };
    const s = summarizeResets(probeResetFor("llama-server"), [ok, undefined, busy, ok, unknown]);
    expect(s).toMatchObject({ canReset: true, probes: 4, reset: 2, notIdle: 1, idleUnknown: 1 });
    expect(s.firstProblem).toBe("still busy after 30 s");
    expect(summarizeResets(noProbeReset("x"), [ok, ok]).firstProblem).toBeUndefined();
  });
});
