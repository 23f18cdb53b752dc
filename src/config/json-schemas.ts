import { z } from "zod";
import { resultsSchema } from "../report/results-schema.js";
import { suiteSchema } from "./suite-schema.js";

/** The JSON Schemas committed under schema/ (for editors and for other tools reading results.json). */
export function jsonSchemas(): Record<string, unknown> {
  return {
    "suite.schema.json": {
      ...z.toJSONSchema(suiteSchema, { io: "input", unrepresentable: "any" }),
      title: "tokengate suite file",
    },
    "results.schema.json": {
      ...z.toJSONSchema(resultsSchema, { io: "input", unrepresentable: "any" }),
      title: "tokengate results.json (schemaVersion 1)",
    },
  };
}
