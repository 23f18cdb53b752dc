/**
 * Checks HTTP requests (and the fake's responses) against GitHub's own OpenAPI description of api.github.com, as
 * shipped in @octokit/openapi. Used by the fake GitHub server: a request our code makes that GitHub would not accept
 * (unknown path or method, a bad path or query parameter, an invalid body) becomes a recorded violation that the test
 * asserts is absent, so the fake cannot silently accept what the real API would refuse.
 *
 * The dereferenced description is ~70 MB of JSON; it is parsed once per test process (about a second).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";

// ajv-formats is CommonJS with a default export; under NodeNext its default import is the module object.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: Record<string, unknown>;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> };
  responses?: Record<
    string,
    { content?: Record<string, { schema?: Record<string, unknown>; examples?: Record<string, { value?: unknown }> }> }
  >;
}

interface Spec {
  paths: Record<string, Record<string, Operation>>;
}

interface Route {
  template: string;
  regex: RegExp;
  params: string[];
  literalSegments: number;
}

let cachedSpec: Spec | undefined;

function loadSpec(): Spec {
  if (!cachedSpec) {
    const require = createRequire(import.meta.url);
    const file = require.resolve("@octokit/openapi/generated/api.github.com.deref.json");
    cachedSpec = JSON.parse(readFileSync(file, "utf8")) as Spec;
  }
  return cachedSpec;
}

export interface CheckResult {
  /** `GET /repos/{owner}/{repo}/issues/{issue_number}/comments`, when the path and method exist. */
  operation?: string;
  operationId?: string;
  violations: string[];
}

export class GitHubOpenApi {
  private readonly spec = loadSpec();
  private readonly routes: Route[];
  private readonly ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  private readonly compiled = new Map<object, ValidateFunction>();

  constructor() {
    addFormats(this.ajv);
    this.routes = Object.keys(this.spec.paths)
      .map((template) => {
        const params: string[] = [];
        const pattern = template
          .split("/")
          .map((seg) => {
            const m = /^\{(.+)\}$/.exec(seg);
            if (m) {
              params.push(m[1]!);
              return "([^/]+)";
            }
            return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
          })
          .join("/");
        return {
          template,
          regex: new RegExp(`^${pattern}$`),
          params,
          literalSegments: template.split("/").length - params.length,
        };
      })
      // Literal segments win over parameters: /issues/comments before /issues/{issue_number}.
      .sort((a, b) => b.literalSegments - a.literalSegments);
  }

  private validator(schema: Record<string, unknown>): ValidateFunction {
    let v = this.compiled.get(schema);
    if (!v) {
      v = this.ajv.compile(schema);
      this.compiled.set(schema, v);
    }
    return v;
  }

  private validate(schema: Record<string, unknown> | undefined, value: unknown, what: string): string[] {
    if (!schema) return [];
    const v = this.validator(schema);
    if (v(value)) return [];
    return (v.errors ?? []).slice(0, 5).map((e) => `${what}${e.instancePath} ${e.message ?? "is invalid"}`);
  }

  /** Finds the operation for a method and URL path (without query). */
  find(method: string, path: string): { route: Route; op: Operation; values: Record<string, string> } | undefined {
    for (const route of this.routes) {
      const m = route.regex.exec(path);
      if (!m) continue;
      const op = this.spec.paths[route.template]?.[method.toLowerCase()];
      if (!op) continue;
      const values = Object.fromEntries(route.params.map((p, i) => [p, decodeURIComponent(m[i + 1]!)]));
      return { route, op, values };
    }
    return undefined;
  }

  /** Checks a request: the operation exists; path params, query params and the JSON body match their schemas. */
  checkRequest(method: string, url: URL, body: unknown): CheckResult {
    const found = this.find(method, url.pathname);
    if (!found) return { violations: [`${method} ${url.pathname}: no such operation in GitHub's REST API`] };
    const { route, op, values } = found;
    const operation = `${method.toUpperCase()} ${route.template}`;
    const violations: string[] = [];
    const params = op.parameters ?? [];
    for (const p of params.filter((x) => x.in === "path")) {
      violations.push(...this.validate(p.schema, coerce(values[p.name], p.schema), `path parameter ${p.name}`));
    }
    const declared = new Map(params.filter((x) => x.in === "query").map((p) => [p.name, p]));
    for (const [name, raw] of url.searchParams) {
      const p = declared.get(name);
      if (!p) {
        violations.push(`query parameter ${name} is not accepted by ${operation}`);
        continue;
      }
      violations.push(...this.validate(p.schema, coerce(raw, p.schema), `query parameter ${name}`));
    }
    for (const p of declared.values()) {
      if (p.required && !url.searchParams.has(p.name)) violations.push(`query parameter ${p.name} is required`);
    }
    const bodySchema = op.requestBody?.content?.["application/json"]?.schema;
    if (body !== undefined) {
      if (!bodySchema) violations.push(`${operation} takes no JSON body`);
      else violations.push(...this.validate(bodySchema, body, "body"));
    } else if (op.requestBody?.required) {
      violations.push(`${operation} requires a JSON body`);
    }
    return { operation, operationId: op.operationId, violations };
  }

  /**
   * GitHub's documented example response for an operation (a deep copy), e.g. `example("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", 201)`.
   * The fake builds its responses from these, so they carry every field real responses have.
   */
  example(method: string, template: string, status: number): Record<string, unknown> {
    const op = this.spec.paths[template]?.[method.toLowerCase()];
    const value = op?.responses?.[String(status)]?.content?.["application/json"]?.examples?.default?.value;
    if (value === undefined) throw new Error(`no documented example for ${method} ${template} ${status}`);
    return structuredClone(value) as Record<string, unknown>;
  }

  /** Checks a response body the fake is about to send against the documented response for that status. */
  checkResponse(method: string, path: string, status: number, body: unknown): string[] {
    const found = this.find(method, path);
    if (!found) return [];
    const res = found.op.responses?.[String(status)];
    if (!res) return [`${method} ${found.route.template}: GitHub does not document status ${status}`];
    const schema = res.content?.["application/json"]?.schema;
    if (!schema || body === undefined) return [];
    return this.validate(schema, body, `response ${status}`);
  }
}

/** Query and path values arrive as strings; turn them into the schema's type before validating. */
function coerce(raw: string | undefined, schema: Record<string, unknown> | undefined): unknown {
  if (raw === undefined || !schema) return raw;
  const type = schema.type;
  if (type === "integer" || type === "number") {
    const n = Number(raw);
    return raw.trim() === "" || Number.isNaN(n) ? raw : n;
  }
  if (type === "boolean") return raw === "true" ? true : raw === "false" ? false : raw;
  return raw;
}
