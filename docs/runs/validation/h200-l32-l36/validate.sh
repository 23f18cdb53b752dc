# Issue 5 validation on the H200 (docs/verdicts.md "Validation"): interleaved runs of the gpu-validate suite,
# A = 7B q4_0 L32, B = the same shape at 36 layers. Needs .gpu/ filled by ../shared/gpu/pack.sh (node, the bundled
# llama.cpp source, vocab) and dist/ built; run on the device machine with carry [".gpu", "dist"]:
#   BUDGET=545 bash docs/runs/validation/h200-l32-l36/validate.sh   (results tarred into $OUT/val-<time>.tar.gz)
# The first call builds llama.cpp with CUDA (~330 s) and writes both models (~9 s each); a warm machine reuses them.
set -u
T0=$SECONDS
source .gpu/bootstrap.sh
W=$GPU_WORK
mkdir -p "$W/models" "$W/val"
export TOKENGATE_CACHE_DIR=$W/cache TOKENGATE_VOCAB_DIR=$VOCAB_DIR
[[ -f $W/models/a.gguf ]] || "$NODE" dist/cli.js model synth --preset 7b --type q4_0 --out "$W/models/a.gguf"
[[ -f $W/models/b.gguf ]] || "$NODE" dist/cli.js model synth --preset 7b --type q4_0 --layers 36 --out "$W/models/b.gguf"
echo "setup done at $((SECONDS - T0)) s"
deadline=$((T0 + ${BUDGET:-540}))
run() { # side index
  local d="$W/val/$1$2"
  "$NODE" dist/cli.js run --suite examples/suites/gpu-validate.yml --target llama-server \
    --server-bin "$LLAMA_BIN/llama-server" --model "$W/models/$1.gguf" --out "$d" --quiet > "$d.log" 2>&1
  echo "$1$2 rc=$? at $((SECONDS - T0)) s: $(grep -m1 Overall "$d.log")"
  cat /proc/loadavg
}
i=$(( $(ls "$W/val" | grep -c '^a[0-9]*$') + 1 ))
while (( SECONDS + 85 < deadline )); do
  if (( i % 2 )); then run a $i; run b $i; else run b $i; run a $i; fi
  i=$((i + 1))
done
cd "$W/val" && tar -czf "$OUT/val-$(date +%H%M%S).tar.gz" */results.json *.log && ls -la "$OUT"
