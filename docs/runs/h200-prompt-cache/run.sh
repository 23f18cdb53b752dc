# H200: llama-server's host-memory prompt cache (--cache-ram, on by default) vs TTFT, 7B q4_0, one lease, in order:
# default, --cache-ram 0, --no-cache-idle-slots, default again. Results: docs/runs/h200-prompt-cache/*.json,
# read in docs/performance.md ("The prompt cache costs TTFT"). Needs .gpu/ filled by ../shared/gpu/pack.sh and dist/;
# on the device machine with carry [".gpu"]:  bash docs/runs/h200-prompt-cache/run.sh  (~400 s, 300 of them the build)
set -u
T0=$SECONDS
source .gpu/bootstrap.sh
W=$GPU_WORK; mkdir -p $W/models $W/r
export TOKENGATE_CACHE_DIR=$W/cache TOKENGATE_VOCAB_DIR=$VOCAB_DIR
[[ -f $W/models/a.gguf ]] || "$NODE" dist/cli.js model synth --preset 7b --type q4_0 --out $W/models/a.gguf > /dev/null
echo "setup $((SECONDS-T0)) s"
suite() { # name flags...
  local n=$1; shift
  { echo "name: $n"; echo "target:"; echo "  kind: llama-server"; local extra=""; for f in "$@"; do extra="$extra, \"$f\""; done
    echo "  serverFlags: [\"-ngl\", \"99\", \"--parallel\", \"8\", \"-c\", \"32768\", \"-fa\", \"on\"$extra]"
    echo "request: {api: completion, maxTokens: 32}"; echo "trials: 1"
    echo "tests:"; echo "  - {kind: latency, promptTokens: [32, 256, 2048], repetitions: 8, warmup: 2}"
    echo "  - {kind: throughput, concurrency: 8, requests: 32, promptTokens: 256, warmup: 8}"; } > $W/$n.yml
  "$NODE" dist/cli.js run --suite $W/$n.yml --target llama-server --server-bin $LLAMA_BIN/llama-server --model $W/models/a.gguf --out $W/r/$n --quiet > $W/r/$n.log 2>&1
  echo "$n rc=$? $((SECONDS-T0)) s"
  grep -E "ttft p50|Overall" $W/r/$n.log
}
suite default
suite noram --cache-ram 0
suite noidle --no-cache-idle-slots
suite default2
cp $W/r/default.log $OUT/ 2>/dev/null; tar -czf $OUT/prefill.tar.gz -C $W/r .
