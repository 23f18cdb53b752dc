import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ActionContext } from "../../src/publish/context.js";
import { isFromFork, pullRequestOf } from "../../src/publish/context.js";
import { assertNotPwnRequest, gitHead, makePrFile, parsePrFile } from "../../src/publish/fork.js";
import { readZipEntries } from "../../src/publish/zip-reader.js";
import { BadInputError } from "../../src/util/errors.js";
import { makeZip } from "../helpers/github-zip.js";

const HEAD = "a".repeat(40);
const MERGE = "b".repeat(40);
const BASE = "c".repeat(40);

function ctx(eventName: string, headRepo = "fork-owner/repo"): ActionContext {
  return {
    eventName,
    payload: {
      pull_request: {
        number: 12,
        merge_commit_sha: MERGE,
        head: { sha: HEAD, repo: { full_name: headRepo } },
        base: { repo: { full_name: "o/r" } },
      },
    },
    repo: { owner: "o", repo: "r" },
    serverUrl: "https://github.com",
    runId: 1,
    runAttempt: 1,
    job: "bench",
    sha: BASE,
  };
}

describe("pull request context", () => {
  it("reads the PR and tells forks apart", () => {
    const pr = pullRequestOf(ctx("pull_request"))!;
    expect(pr).toEqual({ number: 12, headSha: HEAD, headRepo: "fork-owner/repo", baseRepo: "o/r" });
    expect(isFromFork(pr)).toBe(true);
    expect(isFromFork(pullRequestOf(ctx("pull_request", "o/r"))!)).toBe(false);
    expect(pullRequestOf(ctx("push"))).toBeUndefined();
  });
});

describe("assertNotPwnRequest", () => {
  const headIs = (sha: string | undefined) => async () => sha;

  it("refuses pull_request_target when the checkout is the PR head or its merge commit", async () => {
    for (const sha of [HEAD, MERGE]) {
      const err = await assertNotPwnRequest(ctx("pull_request_target"), ["/ws"], headIs(sha)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadInputError);
      expect((err as BadInputError).message).toMatch(/refusing to run.*pull request's own code/);
      expect((err as BadInputError).hint).toMatch(/mode: run.*mode: report/);
    }
  });

  it("allows pull_request_target on the base checkout, and every other event", async () => {
    await expect(assertNotPwnRequest(ctx("pull_request_target"), ["/ws"], headIs(BASE))).resolves.toBeUndefined();
    await expect(assertNotPwnRequest(ctx("pull_request_target"), ["/ws"], headIs(undefined))).resolves.toBeUndefined();
    await expect(assertNotPwnRequest(ctx("pull_request"), ["/ws"], headIs(HEAD))).resolves.toBeUndefined();
  });

  it("reads HEAD with git, and gives undefined outside a checkout", async () => {
    expect(await gitHead(process.cwd())).toMatch(/^[0-9a-f]{40}$/);
    expect(await gitHead(mkdtempSync(join(tmpdir(), "tg-nogit-")))).toBeUndefined();
  });
});

describe("pr.json", () => {
  it("round-trips what a run writes", () => {
    const file = makePrFile(ctx("pull_request"), { id: "bench-1a2b3c4d", label: "bench (gpu: h200)" });
    expect(parsePrFile(Buffer.from(JSON.stringify(file)), "a")).toEqual(file);
  });

  it.each([
    ["not JSON", "{"],
    [
      "a leg id that is not a slug",
      JSON.stringify({ schemaVersion: 1, event: "pull_request", leg: { id: "../x", label: "" }, pullRequest: null }),
    ],
    [
      "a short sha",
      JSON.stringify({
        schemaVersion: 1,
        event: "pull_request",
        leg: { id: "x", label: "" },
        pullRequest: { number: 1, headSha: "abc", baseRepo: "o/r" },
      }),
    ],
    [
      "a negative PR number",
      JSON.stringify({
        schemaVersion: 1,
        event: "pull_request",
        leg: { id: "x", label: "" },
        pullRequest: { number: -1, headSha: HEAD, baseRepo: "o/r" },
      }),
    ],
  ])("refuses %s", (_what, text) => {
    expect(() => parsePrFile(Buffer.from(text), "artifact a")).toThrow(BadInputError);
  });
});

describe("readZipEntries (artifacts of other runs)", () => {
  const dir = mkdtempSync(join(tmpdir(), "tg-zip-"));
  const write = (name: string, buf: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, buf);
    return p;
  };

  it("reads only the wanted entries, stored or deflated", async () => {
    const zip = write(
      "ok.zip",
      makeZip([
        { name: "results.json", data: Buffer.from('{"a":1}') },
        { name: "records.ndjson", data: Buffer.alloc(100_000, 1) },
        { name: "pr.json", data: Buffer.from("{}"), method: 0 },
      ]),
    );
    const got = await readZipEntries(zip, ["results.json", "pr.json", "missing.json"], { maxEntryBytes: 1000 });
    expect([...got.keys()].sort()).toEqual(["pr.json", "results.json"]);
    expect(got.get("results.json")?.toString()).toBe('{"a":1}');
  });

  it("stops a zip bomb whose directory lies about the size", async () => {
    const zip = write("bomb.zip", makeZip([{ name: "results.json", data: Buffer.alloc(5_000_000), claimedSize: 100 }]));
    await expect(readZipEntries(zip, ["results.json"], { maxEntryBytes: 1_000_000 })).rejects.toThrow(
      /does not inflate within 1000000 bytes/,
    );
  });

  it("refuses an entry that declares more than the cap", async () => {
    const zip = write("big.zip", makeZip([{ name: "results.json", data: Buffer.alloc(2000) }]));
    await expect(readZipEntries(zip, ["results.json"], { maxEntryBytes: 1000 })).rejects.toThrow(
      /over the 1000-byte limit/,
    );
  });

  it("refuses a CRC mismatch and a file that is not a zip", async () => {
    const bad = write("crc.zip", makeZip([{ name: "results.json", data: Buffer.from("{}"), claimedCrc: 1234 }]));
    await expect(readZipEntries(bad, ["results.json"], { maxEntryBytes: 1000 })).rejects.toThrow(/CRC-32/);
    const junk = write("junk.zip", Buffer.from("this is not a zip file at all, just text"));
    await expect(readZipEntries(junk, ["results.json"], { maxEntryBytes: 1000 })).rejects.toThrow(
      /end-of-central-directory/,
    );
  });
});
