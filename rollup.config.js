// Bundles tokengate into dist/ (committed; .github/workflows/check-dist.yml rebuilds it and fails on any diff).
//
// Why rollup and ESM (not ncc, not CJS): @actions/core 3, @actions/github 9 and @actions/artifact 6 are ESM-only, and
// actions/typescript-action bundles the same way. typescript must be 6.x here: typescript 7 has no JavaScript API and
// @rollup/plugin-typescript imports it (shared/FACTS.md).
//
// node-llama-cpp stays external: it loads native .node binaries (CUDA builds are hundreds of MB) from its own package
// folder, so it must be installed next to dist/ (the runner image and `npm ci` in this repo provide it) and is loaded
// with a dynamic import() only by the in-process target.
import { existsSync } from "node:fs";
import commonjs from "@rollup/plugin-commonjs";
import json from "@rollup/plugin-json";
import { nodeResolve } from "@rollup/plugin-node-resolve";
import typescript from "@rollup/plugin-typescript";

/** Entry points, by output name. An entry whose source does not exist yet is skipped (others are still being written). */
const entries = {
  index: "src/action.ts",
  post: "src/post.ts",
  cli: "src/cli.ts",
  "in-process-server": "src/target/in-process/child.ts",
};

const input = Object.fromEntries(Object.entries(entries).filter(([, src]) => existsSync(src)));

/** Warnings that come from third-party code we do not control and that do not affect the bundle. */
function onwarn(warning, warn) {
  const fromDeps = (id) => typeof id === "string" && id.includes("node_modules");
  if (warning.code === "CIRCULAR_DEPENDENCY" && (warning.ids ?? []).some(fromDeps)) return;
  if (warning.code === "THIS_IS_UNDEFINED" && fromDeps(warning.id)) return;
  if (warning.code === "EVAL" && fromDeps(warning.id)) return;
  // zod and others carry `@__PURE__` comments in places rollup cannot use; it drops them, the code is unchanged.
  if (warning.code === "INVALID_ANNOTATION" && fromDeps(warning.id)) return;
  warn(warning);
}

export default {
  input,
  // canvas: vega's optional `import('canvas')` (inside a try) for PNG output; we render SVG only.
  external: [/^node-llama-cpp(\/.*)?$/, /^@node-llama-cpp\//, "canvas"],
  output: {
    dir: "dist",
    format: "es",
    entryFileNames: "[name].js",
    // Shared code between the entries. Names carry a content hash, so the output is the same on every build.
    chunkFileNames: "chunks/[name]-[hash].js",
    sourcemap: false,
    // Some bundled CommonJS dependencies call require() at run time (optional deps, JSON); give ESM output one.
    banner: 'import { createRequire as __tokengateCreateRequire } from "node:module";\nconst require = __tokengateCreateRequire(import.meta.url);',
  },
  onwarn,
  plugins: [
    typescript({
      tsconfig: "./tsconfig.json",
      // The tsconfig's outDir (lib/) is for tsc; the plugin requires one inside rollup's output dir.
      outDir: "dist",
      declaration: false,
      sourceMap: false,
      noEmitOnError: false,
    }),
    nodeResolve({ preferBuiltins: true, exportConditions: ["node", "import", "default"] }),
    // undici probes `node:sqlite` (its optional SQLite cache store) with a lazy require; hoisted into an import it
    // breaks Node 20, which has no such module. Leave that require as it is (the banner's createRequire serves it).
    commonjs({ ignore: ["node:sqlite"] }),
    json(),
  ],
};
