/**
 * A stand-in for a tokengate process in the middle of a run: starts a real child the way tokengate does, prints its
 * pids as one JSON line, then waits forever. children-signals.test.ts sends it SIGTERM / SIGINT / SIGKILL and checks
 * that nothing it started outlives it. Not a test file (vitest collects `*.test.ts` only).
 *
 * argv: llama-server <serverBin> <model>   a llama-server target          -> {"pid": server pid, "baseUrl", "logFile"}
 *       in-process <model>                 the in-process target's child  -> {"pid": child pid, "baseUrl"}
 *       build-group                        runCommand with processGroup (a shell that starts a `sleep` and waits, as
 *                                          cmake starts ninja)           -> {"pid": the sleep's pid}
 *       <serverBin> <model>                (older form) llama-server
 */
import { createInProcessTarget } from "../../src/target/in-process/target.js";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import { runCommand } from "../../src/util/run-command.js";

const argv = process.argv.slice(2);
const mode = ["llama-server", "in-process", "build-group"].includes(argv[0] ?? "") ? argv.shift() : "llama-server";

function usage(): never {
  console.error(
    "usage: children-hold-target.fixture.ts llama-server <serverBin> <model> | in-process <model> | build-group",
  );
  process.exit(2);
}

if (mode === "llama-server") {
  const [serverBin, model] = argv;
  if (!serverBin || !model) usage();
  const target = createLlamaServerTarget({ model, serverBin, threads: 1 });
  const ep = await target.start();
  console.log(JSON.stringify({ pid: target.pid(), baseUrl: ep.baseUrl, logFile: ep.logFile }));
} else if (mode === "in-process") {
  const [model] = argv;
  if (!model) usage();
  const target = createInProcessTarget({ modelPath: model, threads: 1, sequences: 1, contextSize: 128 });
  const ep = await target.start();
  console.log(JSON.stringify({ pid: target.pid(), baseUrl: ep.baseUrl }));
} else {
  // `sleep 300 &` is the grandchild (a compiler under ninja under cmake); `wait` keeps the shell (the leader) alive.
  void runCommand("sh", ["-c", "sleep 300 & echo $!; wait"], {
    processGroup: true,
    onLine: (line) => {
      if (/^\d+$/.test(line)) console.log(JSON.stringify({ pid: Number(line) }));
    },
  });
}
// Keep the event loop alive until a signal arrives; the hooks in src/util/children.ts do the rest.
setInterval(() => {}, 1 << 30);
