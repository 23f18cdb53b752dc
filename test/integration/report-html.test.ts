import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Results } from "../../src/measure/results.js";
import { renderHtml } from "../../src/report/html.js";
import { resultsSchema } from "../../src/report/results-schema.js";

// report.html in a real browser: Debian's chromium, headless, driven by playwright-core. The screenshots stay in the
// temp dir (path printed) so a person can look at them.

const CHROMIUM = "/usr/bin/chromium";
const dir = mkdtempSync(join(tmpdir(), "tokengate-report-html-"));
const results = resultsSchema.parse(
  JSON.parse(readFileSync(new URL("../fixtures/results/quick.json", import.meta.url), "utf8")),
) as Results;

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  process.stdout.write(`report.html screenshots in ${dir}\n`);
});

/** Opens a file and records what the page did: console messages, page errors, requests, dialogs. */
async function open(file: string) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const seen = { console: [] as string[], errors: [] as string[], requests: [] as string[], dialogs: [] as string[] };
  page.on("console", (m) => seen.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (err) => seen.errors.push(err.message));
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("dialog", async (d) => {
    seen.dialogs.push(d.message());
    await d.dismiss();
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  return { page, seen };
}

describe("report.html in headless Chromium", () => {
  it("renders the verdict, tables and charts with no console errors and no network", async () => {
    const file = join(dir, "report.html");
    writeFileSync(file, await renderHtml(results));
    const { page, seen } = await open(file);

    expect(seen.errors).toEqual([]);
    expect(seen.console.filter((m) => m.startsWith("error"))).toEqual([]);
    // The only request is the page itself: no CDN, no font, no image.
    expect(seen.requests).toEqual([pathToFileURL(file).href]);

    expect(await page.title()).toBe(`tokengate ${results.verdict.overall.toUpperCase()}: quick`);
    const verdict = page.locator(".verdict");
    expect(await verdict.textContent()).toContain(results.verdict.reason);
    // The verdict comes first: above the checks, tests and analysis.
    const order = (await page.evaluate(
      `["header .verdict", "#checks", "#tests", "#bottlenecks", "#environment", "#definitions"].map(
        (s) => document.querySelector(s)?.getBoundingClientRect().top ?? -1)`,
    )) as number[];
    expect(order.every((y) => y >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));

    // Charts: inline SVG with drawn marks (lines, symbols, bars), each visible with a real size.
    const charts = page.locator("figure.chart svg");
    expect(await charts.count()).toBe(9);
    for (const svg of await charts.all()) {
      const box = await svg.boundingBox();
      expect(box!.width).toBeGreaterThan(200);
      expect(box!.height).toBeGreaterThan(80);
    }
    expect(await page.locator("figure.chart .mark-line path").count()).toBeGreaterThan(10);
    expect(await page.locator("figure.chart .mark-symbol path").count()).toBeGreaterThan(5);
    expect(await page.locator("#run-split .mark-rect path").count()).toBe(9); // 3 tests x 3 phases
    // The axes carry text (vega drew labels, not empty groups).
    expect(await page.locator("#t2-load .role-axis-label text").count()).toBeGreaterThan(4);

    // Tables and the analysis.
    expect(await page.locator("section.test").count()).toBe(3);
    expect(await page.locator("#bottlenecks ul.findings > li").count()).toBe(results.analysis!.bottlenecks.length);
    expect(await page.locator("#bottlenecks ol.recs > li").count()).toBe(results.analysis!.recommendations.length);
    expect(await page.locator("#definitions").textContent()).toContain("request start -> first SSE event");

    const shot = join(dir, "report.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(50_000);
    await page.close();
  });

  it("hostile names from a suite file stay text: no element, no script, no dialog", async () => {
    const evil: Results = structuredClone(results);
    const payload = `<img src=x onerror=alert(1)><script>alert(2)</script>"'&`;
    evil.suite.name = `</title><script>alert(3)</script>`;
    evil.tests[0]!.name = payload;
    evil.tests[0]!.scenarios[0]!.name = payload;
    evil.environment.target.serverFlags = [payload];
    evil.verdict.reason = payload;
    evil.analysis!.bottlenecks[0]!.test = payload;
    evil.analysis!.bottlenecks[0]!.evidence = [payload];
    const file = join(dir, "evil.html");
    writeFileSync(file, await renderHtml(evil));
    const { page, seen } = await open(file);
    expect(seen.dialogs).toEqual([]);
    expect(seen.errors).toEqual([]);
    expect(seen.requests).toEqual([pathToFileURL(file).href]);
    expect(await page.locator("script").count()).toBe(0);
    expect(await page.locator("img").count()).toBe(0);
    expect(await page.title()).toBe("tokengate FAIL: </title><script>alert(3)</script>");
    expect(await page.locator(".verdict").textContent()).toContain(payload);
    expect(await page.locator("#test-0 h3").textContent()).toContain(payload);
    await page.screenshot({ path: join(dir, "evil.png") });
    await page.close();
  });

  it("reads on a narrow screen: no horizontal scrolling of the page itself", async () => {
    const file = join(dir, "report.html");
    const page = await browser.newPage({ viewport: { width: 420, height: 900 } });
    await page.goto(pathToFileURL(file).href);
    const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
    expect(overflow).toBeLessThanOrEqual(1);
    await page.screenshot({ path: join(dir, "narrow.png") });
    await page.close();
  });
});
