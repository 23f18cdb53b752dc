import type { TokengateLoadOptions } from "./tokengate-load.js";

/** What the two floor clients (node-floor-client.ts, raw-floor-client.ts) share: the request bodies and the user loop. */
export type FloorTask = TokengateLoadOptions["tasks"][number];

export function floorOptions(): TokengateLoadOptions {
  return JSON.parse(process.argv[2] ?? "{}") as TokengateLoadOptions;
}

/** The streaming request for a task, as tokengate sends it minus the options a floor does not need. */
export function bodyOf(t: FloorTask): { path: string; body: string } {
  if (t.api === "completion") {
    return { path: "/completion", body: JSON.stringify({ prompt: t.prompt, n_predict: t.maxTokens, stream: true }) };
  }
  return {
    path: "/v1/chat/completions",
    body: JSON.stringify({
      messages: [{ role: "user", content: t.prompt }],
      max_tokens: t.maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    }),
  };
}

/**
 * Announces readiness (the bench reads the pid from it), then runs `o.users` users, each looping over weighted tasks
 * with think time; `newUser` returns the user's request function (its own connection, where the floor keeps one).
 */
export function runFloorUsers(o: TokengateLoadOptions, newUser: () => (t: FloorTask) => Promise<unknown>): void {
  const total = o.tasks.reduce((s, t) => s + t.weight, 0);
  const pick = (): FloorTask => {
    let x = Math.random() * total;
    for (const t of o.tasks) {
      x -= t.weight;
      if (x < 0) return t;
    }
    return o.tasks[0]!;
  };
  const user = async (send: (t: FloorTask) => Promise<unknown>) => {
    for (;;) {
      await send(pick());
      const think = Array.isArray(o.thinkTimeS)
        ? o.thinkTimeS[0] + Math.random() * (o.thinkTimeS[1] - o.thinkTimeS[0])
        : o.thinkTimeS;
      if (think > 0) await new Promise((r) => setTimeout(r, think * 1000));
    }
  };
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
  for (let u = 0; u < o.users; u++) void user(newUser());
}
