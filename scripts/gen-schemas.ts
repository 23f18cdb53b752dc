// Regenerates schema/*.json from the zod schemas: `npm run schema`. test/unit/schemas.test.ts fails when they drift.
import { writeFileSync } from "node:fs";
import { jsonSchemas } from "../src/config/json-schemas.js";

for (const [file, schema] of Object.entries(jsonSchemas())) {
  writeFileSync(new URL(`../schema/${file}`, import.meta.url), `${JSON.stringify(schema, null, 2)}\n`);
  process.stdout.write(`wrote schema/${file}\n`);
}
