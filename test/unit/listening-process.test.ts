import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { busyShare } from "../../src/analysis/policy.js";
import { type MachineLoad, ownProcesses, startMachineSampler } from "../../src/measure/machine-load.js";
import { machineLine } from "../../src/report/machine-line.js";
import { serverHost } from "../../src/target/external.js";
import {
  findListeningProcesses,
  isLoopbackAddress,
  parseListeningSockets,
  ServingProcessFinder,
  withDescendants,
} from "../../src/target/listening-process.js";

// /proc/net/tcp and /proc/net/tcp6 as a little-endian Linux writes them (the header and columns as seen here; the
// rows: 127.0.0.1:8080 and 0.0.0.0:8081 listening, an established connection to 8080, a TIME_WAIT one).
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6666 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 7777 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:B3D2 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
`;
// ::1:8082, :::8083 and ::ffff:127.0.0.1:8084 listening.
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8888 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9999 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F94 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
`;

describe("parseListeningSockets: /proc/net/tcp and tcp6", () => {
  it("reads LISTEN rows only, with addresses in the kernel's byte order decoded", () => {
    expect(parseListeningSockets(TCP, true)).toEqual([
      { address: "127.0.0.1", port: 8080, inode: 5555 },
      { address: "0.0.0.0", port: 8081, inode: 6666 },
    ]);
    expect(parseListeningSockets(TCP6, true)).toEqual([
      { address: "::1", port: 8082, inode: 8888 },
      { address: "::", port: 8083, inode: 9999 },
      { address: "::ffff:127.0.0.1", port: 8084, inode: 1111 },
    ]);
  });

  it("on a big-endian machine the words are not reversed", () => {
    const be = "   0: 7F000001:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1\n";
    expect(parseListeningSockets(be, false)).toEqual([{ address: "127.0.0.1", port: 8080, inode: 42 }]);
  });

  it("skips what does not parse (a header, a short row, a bad address, inode 0)", () => {
    const junk = [
      "  sl  local_address rem_address   st",
      "   0: 0100007F:1F90 00000000:0000 0A",
      "   1: XYZ:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 12 1",
      "   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 0 1",
      "",
    ].join("\n");
    expect(parseListeningSockets(junk, true)).toEqual([]);
  });

  it("knows loopback addresses", () => {
    for (const a of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) expect(isLoopbackAddress(a)).toBe(true);
    for (const a of ["10.0.0.1", "::", "0.0.0.0", "::ffff:10.0.0.1", "fe80::1"])
      expect(isLoopbackAddress(a)).toBe(false);
  });
});

/** A /proc of our own: the tables above, and processes with the given fd links, names and children. */
function fakeProc(procs: Record<number, { fds?: string[]; comm?: string; children?: number[] }>): string {
  const root = mkdtempSync(join(tmpdir(), "tokengate-proc-"));
  mkdirSync(join(root, "net"));
  writeFileSync(join(root, "net", "tcp"), TCP);
  writeFileSync(join(root, "net", "tcp6"), TCP6);
  mkdirSync(join(root, "self"));
  for (const [pid, p] of Object.entries(procs)) {
    mkdirSync(join(root, pid, "fd"), { recursive: true });
    mkdirSync(join(root, pid, "task", pid), { recursive: true });
    writeFileSync(join(root, pid, "stat"), `${pid} (${p.comm ?? "x"}) S 1`);
    writeFileSync(join(root, pid, "comm"), `${p.comm ?? "x"}\n`);
    writeFileSync(join(root, pid, "task", pid, "children"), (p.children ?? []).map((c) => `${c} `).join(""));
    // Links in /proc/<pid>/fd point at names that are not files (`socket:[5555]`): readlink reads them as text.
    for (const [i, target] of (p.fds ?? []).entries()) symlinkSync(target, join(root, pid, "fd", String(i)));
  }
  return root;
}

describe("findListeningProcesses: port -> socket inode -> pid", () => {
  const proc = fakeProc({
    100: { fds: ["/dev/null", "pipe:[1]"], comm: "bash" },
    4242: { fds: ["/dev/null", "socket:[5555]", "socket:[7777]"], comm: "llama-server", children: [4300] },
    4300: { comm: "worker", children: [4301] },
    4301: { comm: "worker" },
    5000: { fds: ["socket:[6666]"], comm: "docker-proxy" },
    6000: { fds: ["socket:[8888]"], comm: "ollama" },
  });

  it("finds the process holding the LISTEN socket for 127.0.0.1:8080", () => {
    const r = findListeningProcesses(8080, { addresses: ["127.0.0.1"], procRoot: proc });
    expect(r).toEqual({ found: true, pids: [4242], sockets: [{ address: "127.0.0.1", port: 8080, inode: 5555 }] });
  });

  it("matches ::1 for localhost, and a wildcard socket for any address", () => {
    const v6 = findListeningProcesses(8082, { addresses: ["127.0.0.1", "::1"], procRoot: proc });
    expect(v6).toMatchObject({ found: true, pids: [6000] });
    // A socket on 127.0.0.1 does not serve a client connecting to ::1.
    expect(findListeningProcesses(8080, { addresses: ["::1"], procRoot: proc }).found).toBe(false);
  });

  it("a port forwarder is not the server: unknown, saying so", () => {
    const r = findListeningProcesses(8081, { addresses: ["127.0.0.1"], procRoot: proc });
    expect(r).toEqual({
      found: false,
      why: "port 8081 is held by docker-proxy (pid 5000), a port forwarder: the server behind it is not visible",
    });
  });

  it("no socket, or a socket nobody visible holds: unknown, with why", () => {
    expect(findListeningProcesses(9, { addresses: ["127.0.0.1"], procRoot: proc })).toEqual({
      found: false,
      why: "no socket in this network namespace listens on port 9 (a server in a container or another namespace?)",
    });
    expect(findListeningProcesses(8083, { addresses: ["::1"], procRoot: proc })).toEqual({
      found: false,
      why: "no process holds the socket listening on port 8083",
    });
    expect(findListeningProcesses(8080, { addresses: ["127.0.0.1"], procRoot: join(proc, "nope") })).toMatchObject({
      found: false,
      why: expect.stringMatching(/net\/tcp is not readable/),
    });
  });

  it("withDescendants adds the processes below (a server's workers)", () => {
    expect(withDescendants([4242], proc)).toEqual([4242, 4300, 4301]);
    expect(withDescendants([100], proc)).toEqual([100]);
  });

  it("ServingProcessFinder caches, and looks again after 5 s", () => {
    let now = 0;
    const finder = new ServingProcessFinder(8080, ["127.0.0.1"], proc, () => now);
    expect(finder.pids()).toEqual([4242, 4300, 4301]);
    const missing = new ServingProcessFinder(9, ["127.0.0.1"], proc, () => now);
    const first = missing.pids();
    expect(first).toEqual({ unknown: expect.stringContaining("port 9") });
    now = 1000;
    expect(missing.pids()).toBe(first);
    now = 6000;
    expect(missing.pids()).not.toBe(first);
  });
});

describe("a server whose process is unknown: the guard says so and does not call the machine busy", () => {
  const load: MachineLoad = {
    cpus: 2,
    wallS: 10,
    ownShare: 0.2,
    otherShare: 0.759,
    stealShare: 0,
    otherShareMax: 0.9,
    loadavg1: [1, 2],
  };

  it("busyShare: a busy machine is busy; the same share with the server unknown is not judged", () => {
    expect(busyShare(load)).toBe(0.759);
    expect(busyShare({ ...load, serverUnknown: "no process holds the socket" })).toBeUndefined();
    expect(busyShare({ ...load, otherShare: 0.1 })).toBeUndefined();
  });

  it("the report line says other work includes the server under test", () => {
    expect(machineLine({ ...load, serverUnknown: "no process holds the socket listening on port 8080" })).toBe(
      "Machine (2 CPUs): other work 75.9% of the CPU time (max 90% over 1 s), tokengate 20%; load average 1 → 2. Other work includes the server under test: its process was not found (no process holds the socket listening on port 8080), so this share is not judged as a busy machine.",
    );
    expect(machineLine(load)).toContain("tokengate and its server 20%");
  });

  it("ownProcesses: servingPids, else pid(); an unknown server marks the load", () => {
    expect(ownProcesses({ pid: () => 7 })()).toEqual([process.pid, 7]);
    expect(ownProcesses({ servingPids: () => [8, 9] })()).toEqual([process.pid, 8, 9]);
    expect(ownProcesses({ servingPids: () => [] })()).toEqual([process.pid]);
    const unknown = { unknown: "why" };
    expect(ownProcesses({ servingPids: () => unknown })()).toEqual([process.pid, unknown]);
  });

  it.runIf(process.platform === "linux")("startMachineSampler records serverUnknown with the first reason", () => {
    const s = startMachineSampler(() => [process.pid, { unknown: "another user's process" }]);
    expect(s.stop()?.serverUnknown).toBe("another user's process");
    const known = startMachineSampler(() => [process.pid]);
    expect(known.stop()?.serverUnknown).toBeUndefined();
  });
});

describe("serverHost: is the external server on this machine?", () => {
  it("loopback addresses and localhost are; TEST-NET is not; an interface's own address is", async () => {
    expect(await serverHost("http://127.0.0.1:8080")).toEqual({ local: true, addresses: ["127.0.0.1"], port: 8080 });
    expect(await serverHost("http://[::1]:8080")).toEqual({ local: true, addresses: ["::1"], port: 8080 });
    expect(await serverHost("http://localhost")).toEqual({ local: true, addresses: ["127.0.0.1", "::1"], port: 80 });
    expect(await serverHost("https://192.0.2.10")).toEqual({ local: false, addresses: ["192.0.2.10"], port: 443 });
    const own = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === "IPv4");
    if (own) expect((await serverHost(`http://${own.address}:9000`)).local).toBe(true);
  });
});
