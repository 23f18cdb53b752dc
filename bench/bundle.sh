#!/usr/bin/env bash
# Bundles the benches and their helper processes into standalone .mjs files (esbuild, already a dev dependency via
# tsx) for a machine that has node but no node_modules (the GPU machine: shared/gpu/README.md).
#   bash bench/bundle.sh OUTDIR      then there: BENCH_BUNDLED=OUTDIR node OUTDIR/timing-fidelity.mjs
# node-llama-cpp stays external: the benches only reach it to synthesize a model that is not cached, so carry the
# cached model and set TOKENGATE_CACHE_DIR (and TOKENGATE_LLAMA_SERVER for the server binary).
set -euo pipefail
out=${1:?usage: bash bench/bundle.sh OUTDIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
for f in bench/*.ts bench/helpers/sse-server-main.ts bench/helpers/tokengate-load.ts bench/helpers/node-floor-client.ts bench/helpers/raw-floor-client.ts; do
  npx esbuild "$f" --bundle --platform=node --format=esm --target=node20 --external:node-llama-cpp \
    --log-level=warning --outfile="$out/$(basename "${f%.ts}").mjs" \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
done
