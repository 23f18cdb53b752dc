import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { jsonSchemas } from "../../src/config/json-schemas.js";

describe("committed JSON Schemas", () => {
  for (const [file, schema] of Object.entries(jsonSchemas())) {
    it(`schema/${file} matches the zod schema (run \`npm run schema\` after changing it)`, () => {
      const committed = JSON.parse(readFileSync(new URL(`../../schema/${file}`, import.meta.url), "utf8"));
      expect(committed).toEqual(JSON.parse(JSON.stringify(schema)));
    });
  }
});
