/**
 * The Grafana dashboard (docker/grafana/dashboards) queries real series: a real Prometheus (Debian's) scrapes a real
 * llama-server (tiny model) with the scrape settings of docker/prometheus.yml, and every panel's PromQL expression
 * returns data after a few requests.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { StreamClient } from "../../src/client/stream-client.js";
import { createLlamaServerTarget } from "../../src/target/llama-server.js";
import { freePort } from "../../src/target/port.js";
import { registerChild, stopChild } from "../../src/util/children.js";
import { findLlamaServerForTests, tinyModel } from "../helpers/models.js";

const root = join(import.meta.dirname, "..", "..");
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Dashboard {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
}

async function query(promUrl: string, expr: string): Promise<unknown[]> {
  const res = await request(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.body.json()) as { status: string; data: { result: unknown[] } };
  expect(body.status).toBe("success");
  return body.data.result;
}

describe("Grafana dashboard against real Prometheus and llama-server", () => {
  it("every panel query returns a series", async () => {
    const target = createLlamaServerTarget({
      model: await tinyModel(),
      serverBin: await findLlamaServerForTests(),
      threads: 1,
    });
    cleanups.push(() => target.stop());
    const endpoint = await target.start();
    const client = new StreamClient(endpoint);
    cleanups.push(() => client.close());

    // docker/prometheus.yml with the scrape target pointed at this server, and a faster interval for the test.
    const config = parse(readFileSync(join(root, "docker", "prometheus.yml"), "utf8")) as {
      global: { scrape_interval: string };
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    config.global.scrape_interval = "1s";
    config.scrape_configs[0]!.static_configs[0]!.targets = [new URL(endpoint.baseUrl).host];
    const dir = mkdtempSync(join(tmpdir(), "tg-prom-"));
    writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config));
    const port = await freePort();
    const prom = spawn(
      "prometheus",
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: "ignore" },
    );
    registerChild(prom);
    cleanups.push(() => stopChild(prom));
    const promUrl = `http://127.0.0.1:${port}`;

    // Traffic over a few scrapes, so rate() over [1m] has at least two samples.
    for (let i = 0; i < 8; i++) {
      const r = await client.send(
        {
          api: "completion",
          prompt: `hello number ${i} of the dashboard test`,
          maxTokens: 16,
          ignoreEos: true,
          temperature: 0,
          cachePrompt: true,
        },
        { id: i, test: "dashboard", scenario: "s", trial: 0, measured: true },
      );
      expect(r.ok).toBe(true);
      await sleep(500);
    }
    const dashboard = JSON.parse(
      readFileSync(join(root, "docker", "grafana", "dashboards", "tokengate-llama-server.json"), "utf8"),
    ) as Dashboard;
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ title: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(6);
    // Wait (bounded) until Prometheus has scraped enough for every expression.
    const deadline = Date.now() + 30_000;
    let missing = exprs;
    while (missing.length > 0 && Date.now() < deadline) {
      const results = await Promise.all(
        missing.map(async (e) => ({ e, n: (await query(promUrl, e.expr).catch(() => [])).length })),
      );
      missing = results.filter((r) => r.n === 0).map((r) => r.e);
      if (missing.length) await sleep(1000);
    }
    expect(missing.map((m) => `${m.title}: ${m.expr}`)).toEqual([]);
  }, 120_000);
});
