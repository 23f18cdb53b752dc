import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { BadInputError, CouldNotRunError } from "../util/errors.js";
import { redact, registerSecret } from "../util/secrets.js";
import { getJson, httpGet, type ProbeOutcome, pollUntilReady, probeFailure } from "./health.js";
import { isLoopbackAddress, ServingProcessFinder } from "./listening-process.js";
import type { LlamaProps } from "./llama-server.js";
import type { ApiKind, Endpoint, Target, TargetFingerprint } from "./types.js";

/**
 * The external target: a server someone else started (llama-server, vLLM, TGI, Ollama, a hosted API) reached by URL.
 * tokengate does not own its process: start() only checks that it answers, stop() only forgets it.
 */
export interface ExternalTargetOptions {
  /** Base URL of an OpenAI-compatible server, e.g. `http://127.0.0.1:8080` (a trailing `/v1` is accepted and removed). */
  url: string;
  /**
   * Environment variable that holds the API key, sent as `Authorization: Bearer ...`. Default `TOKENGATE_API_KEY`.
   * When a different name is given and that variable is unset or empty, that is a BadInputError (a typo or a secret
   * not passed to the job), not a silent run without a key.
   */
  apiKeyEnv?: string;
  /** The `model` field for OpenAI requests. Default: the first id at `/v1/models`. */
  modelName?: string;
  /** How long the server may take to be ready at start (while it answers, e.g. HTTP 503 loading). Default 30 000 ms. */
  readyTimeoutMs?: number;
  /**
   * How long to keep retrying while nothing listens at the URL (connection refused, host not found): for a server that
   * is still starting. Default REFUSED_GRACE_MS (a few seconds), so a wrong address fails fast instead of waiting out
   * readyTimeoutMs. When longer than readyTimeoutMs, the whole wait may take this long.
   */
  waitForServerMs?: number;
  /** A line every few seconds while waiting (`waiting for URL: HTTP 503 (loading), 6 s`). Default: stderr. */
  onWaiting?: (line: string) => void;
  /** Token ids to ban (only known when tokengate made the model). Default none. */
  bannedTokenIds?: number[];
  /** Where to read the key from. Default `process.env` (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_API_KEY_ENV = "TOKENGATE_API_KEY";
/**
 * How long refused connections are retried without --wait-for-server. Long enough for a server that is just binding
 * its port (and a restart of a few hundred ms), short enough that a wrong address is an error in seconds.
 */
export const REFUSED_GRACE_MS = 2500;
const URL_EXAMPLE = "--url http://127.0.0.1:8080";

/**
 * The base URL tokengate appends API paths to: scheme, host, port and any path prefix, without a trailing slash or
 * `/v1` (users copy OpenAI-style base URLs that end in `/v1`; the client adds `/v1/...` itself).
 */
export function normalizeServerUrl(raw: string, subject = "--url"): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new BadInputError(`not a URL: ${JSON.stringify(raw)}`, { subject, hint: URL_EXAMPLE });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new BadInputError(`must be an http:// or https:// URL, got ${u.protocol}`, { subject, hint: URL_EXAMPLE });
  }
  if (u.username !== "" || u.password !== "") {
    // The URL is printed and recorded in results; credentials in it would leak.
    throw new BadInputError("must not contain a user name or password", {
      subject,
      hint: `remove them and put the API key in an environment variable (${DEFAULT_API_KEY_ENV}), e.g. ${URL_EXAMPLE}`,
    });
  }
  if (u.search !== "" || u.hash !== "") {
    throw new BadInputError("must not contain a query string or fragment", { subject, hint: URL_EXAMPLE });
  }
  const path = u.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${u.protocol}//${u.host}${path}`;
}

/** `host:port` of a base URL, with the scheme's default port written out (`127.0.0.1:1`, `example.test:443`). */
export function serverAddress(baseUrl: string): string {
  const u = new URL(baseUrl);
  // URL.hostname keeps the brackets of an IPv6 address ([::1]).
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

function readApiKey(envName: string | undefined, env: NodeJS.ProcessEnv): { name: string; key: string | undefined } {
  const name = envName ?? DEFAULT_API_KEY_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new BadInputError(`not an environment variable name: ${JSON.stringify(name)}`, {
      subject: "--api-key-env",
      hint: `--api-key-env ${DEFAULT_API_KEY_ENV}`,
    });
  }
  const value = env[name];
  const key = value === undefined || value.trim() === "" ? undefined : value.trim();
  if (key === undefined && name !== DEFAULT_API_KEY_ENV) {
    throw new BadInputError(`the environment variable ${name} is not set or empty`, {
      subject: "--api-key-env",
      hint: `set ${name} to the server's API key (in a workflow: env: { ${name}: \${{ secrets.${name} }} })`,
    });
  }
  return { name, key: registerSecret(key) };
}

/**
 * Where the server runs, seen from this machine: the addresses the client connects to, and whether one of them is
 * this machine's (loopback, or an address of one of its interfaces). A name is resolved the way the client will.
 */
export async function serverHost(baseUrl: string): Promise<{ local: boolean; addresses: string[]; port: number }> {
  const u = new URL(baseUrl);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  let addresses: string[];
  if (isIP(host) !== 0) addresses = [host];
  else if (host === "localhost" || host.endsWith(".localhost")) addresses = ["127.0.0.1", "::1"];
  else addresses = (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  const own = new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address),
  );
  return { local: addresses.some((a) => isLoopbackAddress(a) || own.has(a)), addresses, port };
}

interface ModelList {
  data?: { id?: string }[];
}

class ExternalTarget implements Target {
  readonly kind = "external" as const;
  private readonly baseUrl: string;
  private readonly keyEnv: string;
  private readonly apiKey: string | undefined;
  private readonly opts: ExternalTargetOptions;
  private startPromise: Promise<Endpoint> | undefined;
  private stopped = false;
  private endpoint: Endpoint | undefined;
  private props: LlamaProps | undefined;
  private modelId: string | undefined;
  private readyVia: string | undefined;
  /** Finds the server's processes when it runs on this machine (set by start); undefined for a remote server. */
  private serving: ServingProcessFinder | undefined;

  constructor(opts: ExternalTargetOptions) {
    this.opts = opts;
    this.baseUrl = normalizeServerUrl(opts.url);
    const { name, key } = readApiKey(opts.apiKeyEnv, opts.env ?? process.env);
    this.keyEnv = name;
    this.apiKey = key;
  }

  private headers(): Record<string, string> {
    return this.apiKey !== undefined ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  /** A 401/403 means the key is missing or wrong; waiting longer will not fix that, so it ends the wait. */
  private authError(status: number, path: string): BadInputError {
    const where = `${this.baseUrl}${path}`;
    if (this.apiKey === undefined) {
      return new BadInputError(`the server requires an API key (HTTP ${status} from ${where}) and none was set`, {
        subject: `$${this.keyEnv}`,
        hint: `set ${this.keyEnv} to the server's key (in a workflow: env: { ${this.keyEnv}: \${{ secrets.${this.keyEnv} }} })`,
      });
    }
    return new BadInputError(`the server rejected the API key from $${this.keyEnv} (HTTP ${status} from ${where})`, {
      subject: `$${this.keyEnv}`,
      hint: `check that ${this.keyEnv} holds the key the server was started with (e.g. llama-server --api-key)`,
    });
  }

  start(signal?: AbortSignal): Promise<Endpoint> {
    this.startPromise ??= this.doStart(signal);
    return this.startPromise;
  }

  /** Ready when `/v1/models` answers 200; servers without it (404) count as ready when `/health` answers 200. */
  private async probe(remainingMs: number, signal: AbortSignal): Promise<ProbeOutcome> {
    const headers = this.headers();
    try {
      const models = await httpGet(`${this.baseUrl}/v1/models`, { headers, timeoutMs: remainingMs, signal });
      if (models.status === 401 || models.status === 403) throw this.authError(models.status, "/v1/models");
      if (models.status === 200) {
        try {
          this.modelId = (JSON.parse(models.body) as ModelList).data?.[0]?.id;
        } catch {
          // A 200 that is not JSON still means the server answers; the model name falls back below.
        }
        this.readyVia = "/v1/models";
        return { ready: true, detail: "/v1/models HTTP 200" };
      }
      const health = await httpGet(`${this.baseUrl}/health`, { headers, timeoutMs: remainingMs, signal });
      if (health.status === 401 || health.status === 403) throw this.authError(health.status, "/health");
      if (health.status === 200 && models.status === 404) {
        this.readyVia = "/health";
        return { ready: true, detail: "/health HTTP 200" };
      }
      // 503 is llama-server (and others) still loading the model.
      const loading = (status: number) => `HTTP ${status}${status === 503 ? " (loading)" : ""}`;
      const detail =
        models.status === health.status
          ? loading(health.status)
          : `/v1/models HTTP ${models.status}, /health ${loading(health.status)}`;
      return { ready: false, detail };
    } catch (err) {
      if (err instanceof BadInputError) throw err;
      return probeFailure(err);
    }
  }

  private async doStart(signal?: AbortSignal): Promise<Endpoint> {
    if (this.stopped)
      throw new CouldNotRunError("external target was stopped before it started", { subject: this.baseUrl });
    const readyMs = this.opts.readyTimeoutMs ?? 30_000;
    const refusedForMs = this.opts.waitForServerMs ?? REFUSED_GRACE_MS;
    // Asked to wait for a server that is starting: the whole wait may take that long. The default grace never
    // lengthens the readiness deadline.
    const timeoutMs = this.opts.waitForServerMs === undefined ? readyMs : Math.max(readyMs, refusedForMs);
    const onWaiting = this.opts.onWaiting ?? ((line: string) => process.stderr.write(`tokengate: ${line}\n`));
    const result = await pollUntilReady((ms, s) => this.probe(ms, s), {
      timeoutMs,
      refusedForMs,
      signal,
      onWaiting: (detail, elapsedMs) =>
        onWaiting(`waiting for ${this.baseUrl}: ${redact(detail)}, ${Math.round(elapsedMs / 1000)} s`),
    });
    if (!result.ready && result.refused) {
      const waited = `retried for ${(result.elapsedMs / 1000).toFixed(1)} s`;
      const address = serverAddress(this.baseUrl);
      const what = result.detail.startsWith("connection refused")
        ? `connection refused at ${address} (nothing listens there; ${waited})`
        : `${result.detail}: ${address} (${waited})`;
      throw new CouldNotRunError(what, {
        subject: "--url",
        hint:
          `start the server first and check the address, e.g. ${URL_EXAMPLE}; for a server that is still starting, ` +
          "wait for it with --wait-for-server 2m (in the suite: target.waitForServerMs: 120000)",
      });
    }
    if (!result.ready) {
      throw new CouldNotRunError(
        `no answer from ${this.baseUrl} within ${Math.round(timeoutMs / 1000)} s (last: ${redact(result.detail)})`,
        {
          subject: "--url",
          hint: `start the server first and check the address, e.g. ${URL_EXAMPLE}`,
        },
      );
    }

    const where = await serverHost(this.baseUrl);
    if (where.local) this.serving = new ServingProcessFinder(where.port, where.addresses);

    const headers = this.headers();
    // llama-server answers /props (b1-80fb11a keeps it behind the API key, unlike /health): a 401 here means a wrong
    // key even when /v1/models was public on this server.
    const props = await getJson<LlamaProps>(`${this.baseUrl}/props`, { headers, signal }).catch(() => undefined);
    if (props && (props.status === 401 || props.status === 403)) throw this.authError(props.status, "/props");
    const isLlama =
      props?.json !== undefined &&
      typeof props.json === "object" &&
      props.json !== null &&
      ("build_info" in props.json || "default_generation_settings" in props.json);
    if (isLlama) this.props = props?.json;

    let metricsUrl: string | undefined;
    if (isLlama) {
      // Only with --metrics; otherwise llama-server answers 501.
      const m = await httpGet(`${this.baseUrl}/metrics`, { headers, signal }).catch(() => undefined);
      if (m?.status === 200) metricsUrl = `${this.baseUrl}/metrics`;
    }

    const apis: ApiKind[] = isLlama
      ? ["completion", "openai-completions", "openai-chat"]
      : ["openai-completions", "openai-chat"];
    this.endpoint = {
      baseUrl: this.baseUrl,
      apis,
      ...(this.apiKey !== undefined ? { apiKey: this.apiKey } : {}),
      modelName: this.opts.modelName ?? this.modelId ?? this.props?.model_alias ?? "default",
      bannedTokenIds: this.opts.bannedTokenIds ?? [],
      ...(metricsUrl !== undefined ? { metricsUrl } : {}),
    };
    return this.endpoint;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.startPromise?.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  alive(): boolean {
    return this.endpoint !== undefined && !this.stopped;
  }

  /**
   * A server on this machine: the process listening on the URL's port and those below it (listening-process.ts), or
   * `{ unknown }` when they cannot be found. A remote server: none. Deliberately not `pid()`: tokengate does not own
   * this process, and the Action's post step kills what `pid()` names.
   */
  servingPids(): readonly number[] | { unknown: string } {
    return this.serving?.pids() ?? [];
  }

  async fingerprint(): Promise<TargetFingerprint> {
    const p = this.props;
    const details: Record<string, string | number | boolean> = {
      url: this.baseUrl,
      llamaServer: p !== undefined,
      usesApiKey: this.apiKey !== undefined,
    };
    if (this.modelId !== undefined) details.modelId = this.modelId;
    if (this.readyVia !== undefined) details.readyVia = this.readyVia;
    if (p?.total_slots !== undefined) details.slots = p.total_slots;
    const nCtx = p?.default_generation_settings?.n_ctx;
    if (nCtx !== undefined) details.ctxPerSlot = nCtx;
    if (p?.model_ftype !== undefined) details.modelFtype = p.model_ftype;
    const model = p?.model_path !== undefined ? { path: p.model_path } : undefined;
    return {
      kind: this.kind,
      ...(p?.build_info !== undefined ? { build: p.build_info } : {}),
      // The server's flags are not visible from outside.
      serverFlags: [],
      ...(model ? { model } : {}),
      details,
    };
  }
}

export function createExternalTarget(opts: ExternalTargetOptions): Target {
  return new ExternalTarget(opts);
}
