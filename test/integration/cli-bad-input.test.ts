import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type CliRun, runTokengate, STACK_LINE } from "../helpers/cli-run.js";

// Bad input to `tokengate run`, through the real CLI: exit 2, the file or field named in the first line, no stack
// trace, and nothing started or sent (no target is started, records.ndjson is never made).

const dir = mkdtempSync(join(tmpdir(), "tokengate-bad-input-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** `tokengate run ARGS --out <fresh dir>` (unless ARGS has its own --out); checks what every bad input must show. */
async function refused(args: string[]): Promise<{ run: CliRun; first: string; out: string }> {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const run = await runTokengate(["run", "--quiet", ...(args.includes("--out") ? [] : ["--out", out]), ...args]);
  expect(run.code, run.stderr).toBe(2);
  expect(run.stderr).not.toMatch(STACK_LINE);
  expect(run.stderr).not.toMatch(/internal error/);
  // Nothing was started or sent.
  expect(run.stderr).not.toMatch(/starting the .* target/);
  expect(existsSync(join(out, "records.ndjson"))).toBe(false);
  return { run, first: run.stderr.split("\n")[0]!, out };
}

describe("bad paths", () => {
  it("--suite naming a folder", async () => {
    const { first } = await refused(["--suite", dir]);
    expect(first).toBe(`tokengate: ${dir}: is a folder, not a suite file`);
  });

  it.each([
    ["missing", (d: string) => join(d, "nope.gguf"), "model file not found"],
    ["a folder", (d: string) => d, "is a directory, not a GGUF model file"],
    ["not GGUF", () => file("not-a-model.gguf", "hello"), "not a GGUF file: only 5 bytes"],
  ])("--model %s, before any target starts", async (_what, path, why) => {
    const p = path(dir);
    const { first } = await refused(["--model", p]);
    expect(first).toBe(`tokengate: ${p}: ${why}`);
  });

  it("--server-bin missing, before any target starts", async () => {
    const bin = join(dir, "no-llama-server");
    const { first } = await refused(["--target", "llama-server", "--server-bin", bin]);
    expect(first).toBe(`tokengate: --server-bin: llama-server binary not found: ${bin}`);
  });

  it("--out naming an existing regular file", async () => {
    const f = file("a-file", "x");
    const { first } = await refused(["--out", f]);
    expect(first).toBe(`tokengate: --out: ${f} exists and is a file; --out names a folder`);
  });

  it("--out under a regular file (no folder can be made there, even by root)", async () => {
    const f = file("parent-file", "x");
    const { first } = await refused(["--out", join(f, "results")]);
    expect(first).toBe(`tokengate: --out: ${f} is a file, so no folder can be made in it for ${join(f, "results")}`);
  });

  it("--out in a folder tokengate may not write", async () => {
    // mkdtemp's folder is private (0700); nobody must be able to reach the read-only folder inside it.
    chmodSync(dir, 0o755);
    const ro = join(dir, "read-only");
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    // Root may write anywhere, so as root the CLI runs as nobody (65534), for whom the folder is read-only as it is
    // for its owner.
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534, env: { HOME: tmpdir() } } : {};
    const out = join(ro, "out");
    const run = await runTokengate(["run", "--quiet", "--out", out], asNobody);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr.split("\n")[0]).toBe(
      `tokengate: --out: cannot write in ${ro} (no permission), so ${out} cannot be made`,
    );
    expect(run.stderr).not.toMatch(STACK_LINE);
    expect(existsSync(out)).toBe(false);
  });

  it.each(["/proc/self/tokengate-out", "/proc/self/fd/1", "/sys/kernel/tokengate", "/proc"])(
    "--out %s is refused outright (and does not hang)",
    async (path) => {
      const { first } = await refused(["--out", path]);
      expect(first).toMatch(/^tokengate: --out: \/(proc|sys)\S* is (under )?\/(proc|sys), a kernel file system/);
    },
  );

  it("--out through a symbolic link into /proc", async () => {
    const link = join(dir, "to-proc");
    symlinkSync("/proc/self", link);
    const { first } = await refused(["--out", join(link, "out")]);
    expect(first).toMatch(new RegExp(`^tokengate: --out: ${join(link, "out")} leads into /proc`));
  });
});

describe("bad suite files", () => {
  it("a YAML alias bomb names the file and the limit", async () => {
    const rows = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (const [i, c] of ["b", "c", "d", "e", "f", "g"].entries()) {
      const prev = "abcdefg"[i]!;
      rows.push(`${c}: &${c} [${Array(9).fill(`*${prev}`).join(", ")}]`);
    }
    const f = file("bomb.yml", `${rows.join("\n")}\ntests:\n  - kind: latency\n`);
    const { first } = await refused(["--suite", f]);
    expect(first).toMatch(new RegExp(`^tokengate: ${f}: its YAML aliases \\(\\*name\\) expand into more than 100`));
    expect(first).not.toMatch(/Excessive alias count/);
  });

  it("a file over 1 MiB is refused before it is parsed", async () => {
    const f = file("big.yml", `tests:\n  - kind: latency\n${"# padding\n".repeat(110_000)}`);
    const { first } = await refused(["--suite", f]);
    expect(first).toMatch(new RegExp(`^tokengate: ${f}: is 1,100,\\d{3} bytes; a suite file may be at most 1 MiB`));
  });

  it("a YAML syntax error says its location once, without a dangling colon", async () => {
    const f = file("syntax.yml", "tests: [\n  - kind: latency\n");
    const { first } = await refused(["--suite", f]);
    expect(first).toMatch(new RegExp(`^tokengate: ${f}: not valid YAML at line 2, column 3: [^:]+[^:\\s]$`));
    expect(first.match(/at line/g)).toHaveLength(1);
  });
});

describe("targets are read when the suite is loaded", () => {
  it("a suite-level expression that does not parse, and a test name that does not exist", async () => {
    const f = file(
      "target-expr.yml",
      'targets: ["ttft_p95_ms <<< banana", {expression: "e2e_p95_ms < 100", test: nosuch}]\ntests:\n  - kind: latency\n',
    );
    const { first, run } = await refused(["--suite", f]);
    expect(first).toBe(`tokengate: ${f}: invalid suite:`);
    expect(run.stderr).toContain('  - targets[0]: cannot read target "ttft_p95_ms <<< banana"');
    expect(run.stderr).toContain('  - targets[1].test: no test is named "nosuch" (tests: latency)');
  });

  it("per-test targets: a bad expression, an unknown metric (with a suggestion), a metric the kind never measures", async () => {
    const f = file(
      "test-targets.yml",
      [
        "tests:",
        "  - kind: latency",
        '    targets: ["ttft_p95_ms <<< banana", "ttft_p95 < 200", "goodput_rps > 1", "ttft_s < 0.2"]',
        "",
      ].join("\n"),
    );
    const { first, run } = await refused(["--suite", f]);
    expect(first).toBe(`tokengate: ${f}: invalid suite:`);
    expect(run.stderr).toContain("  - tests[0].targets[0]: cannot read target");
    expect(run.stderr).toContain('  - tests[0].targets[1]: tokengate measures no metric "ttft"');
    expect(run.stderr).toContain("did you mean ttft_ms?");
    expect(run.stderr).toContain('  - tests[0].targets[2]: a latency test does not measure "goodput_rps"');
    // ttft_s reads ttft_ms in seconds: fine.
    expect(run.stderr).not.toContain("tests[0].targets[3]");
  });
});

describe("upper bounds, with the reason", () => {
  it("concurrency 100000000 (the analysis once advised target.sequences: 100000000)", async () => {
    const f = file("conc.yml", "tests:\n  - kind: throughput\n    concurrency: 100000000\n");
    const { first, run } = await refused(["--suite", f]);
    expect(first).toBe(`tokengate: ${f}: invalid suite:`);
    expect(run.stderr).toContain(
      "  - tests[0].concurrency: at most 4,096: tokengate opens one connection per request in flight (got 100000000)",
    );
  });

  it("users, rates, durations, trials and closed-loop steps", async () => {
    const f = file(
      "bounds.yml",
      [
        "trials: 100000",
        "tests:",
        "  - kind: stress",
        "    users: 50000",
        "    durationS: 10000000",
        "  - kind: open-loop",
        "    rate: 1000000000",
        "  - kind: ramp",
        "    steps: [1, 2, 100000]",
        "",
      ].join("\n"),
    );
    const { run } = await refused(["--suite", f]);
    expect(run.stderr).toMatch(/trials: at most 1,000: each trial runs the whole test again \(got 100000\)/);
    expect(run.stderr).toMatch(/tests\[0\]\.users: at most 4,096: tokengate opens one connection/);
    expect(run.stderr).toMatch(/tests\[0\]\.durationS: at most 86,400: a day/);
    expect(run.stderr).toMatch(/tests\[1\]\.rate: at most 100,000: far more arrivals per second/);
    expect(run.stderr).toMatch(/tests\[2\]\.steps\[2\]: at most 4,096: .*\(variable: concurrency\)/);
  });

  it("--trials above the bound", async () => {
    const { first } = await refused(["--trials", "5000"]);
    expect(first).toMatch(
      /^tokengate: --trials: must be an integer from 1 to 1000 \(each trial runs the whole test again\)/,
    );
  });
});

describe("target options that the suite's own target.kind does not use", () => {
  it("threads, serverFlags and sequences with kind: external", async () => {
    const f = file(
      "external-opts.yml",
      'target:\n  kind: external\n  url: http://127.0.0.1:1\n  threads: 4\n  sequences: 8\n  serverFlags: ["-ngl", "99"]\ntests:\n  - kind: latency\n',
    );
    const { first, run } = await refused(["--suite", f]);
    expect(first).toBe(`tokengate: ${f}: invalid suite:`);
    for (const field of ["serverFlags", "threads", "sequences"]) {
      expect(run.stderr).toContain(`  - target.${field}: does not apply to target.kind: external`);
    }
  });

  it("url and waitForServerMs with kind: llama-server", async () => {
    const f = file(
      "llama-opts.yml",
      "target:\n  kind: llama-server\n  url: http://127.0.0.1:1\n  waitForServerMs: 5000\ntests:\n  - kind: latency\n",
    );
    const { run } = await refused(["--suite", f]);
    expect(run.stderr).toContain("  - target.url: does not apply to target.kind: llama-server");
    expect(run.stderr).toContain("  - target.waitForServerMs: does not apply to target.kind: llama-server");
  });
});

describe("a folder named like a suite", () => {
  it("--suite dir.yml/ that is a folder", async () => {
    const d = join(dir, "looks-like.yml");
    mkdirSync(d);
    const { first } = await refused(["--suite", d]);
    expect(first).toBe(`tokengate: ${d}: is a folder, not a suite file`);
  });
});

describe("command groups", () => {
  it("`tokengate model --help` lists the group's subcommands and exits 0; `tokengate server` alone is exit 2", async () => {
    const help = await runTokengate(["model", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("tokengate model synth");
    const bare = await runTokengate(["server"]);
    expect(bare.code).toBe(2);
    expect(bare.stderr.split("\n")[0]).toMatch(/^tokengate server: which subcommand\? tokengate server build /);
  });
});
