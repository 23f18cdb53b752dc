/**
 * A stand-in for a tokengate process in the middle of a run: starts a real llama-server target, prints the server's pid
 * as one JSON line, then waits forever. children-signals.test.ts sends it SIGTERM / SIGINT and checks that the server
 * does not outlive it. Not a test file (vitest collects `*.test.ts` only).
 *
 * argv: <serverBin> <model>
 */
import { createLlamaServerTarget } from "../../src/target/llama-server.js";

const [serverBin, model] = process.argv.slice(2);
if (!serverBin || !model) {
  console.error("usage: children-hold-target.fixture.ts <serverBin> <model>");
  process.exit(2);
}
const target = createLlamaServerTarget({ model, serverBin, threads: 1 });
const ep = await target.start();
console.log(JSON.stringify({ pid: target.pid(), baseUrl: ep.baseUrl, logFile: ep.logFile }));
// Keep the event loop alive until a signal arrives; the hooks in src/util/children.ts do the rest.
setInterval(() => {}, 1 << 30);
