# Issue 12 on the H200 (docs/verdicts.md "The gate, end to end"): the committed GPU baseline, `run --baseline` with no
# change and with a real slowdown, and `tokengate ab` A/A and A/B gates, all through the real CLI (dist/cli.js).
# A = the 7B-shaped q4_0 model (32 layers), B = the same shape with 36 layers (about 10% slower). Suite:
# examples/suites/gpu-gate.yml. Needs .gpu/ (../shared/gpu/pack.sh) and dist/; on the device machine with carry
# [".gpu", "dist"]:  PHASE=1 bash docs/runs/h200-gate/gate.sh   (then PHASE=2, PHASE=3 on the warm machine)
#   phase 1: build (first call only), models, 4 baseline runs -> baseline update, run --baseline on A and on B
#   phase 2, 3: A/A and A/B `ab --pairs 3` gates, alternating, until the budget is spent
# Everything comes back as $OUT/gate-<phase>.tar.gz (results.json, report.md, logs; no records).
set -u
T0=$SECONDS
source .gpu/bootstrap.sh
W=$GPU_WORK
mkdir -p "$W/models" "$W/gate"
export TOKENGATE_CACHE_DIR=$W/cache TOKENGATE_VOCAB_DIR=$VOCAB_DIR
[[ -f $W/models/a.gguf ]] || "$NODE" dist/cli.js model synth --preset 7b --type q4_0 --out "$W/models/a.gguf" > /dev/null
[[ -f $W/models/b.gguf ]] || "$NODE" dist/cli.js model synth --preset 7b --type q4_0 --layers 36 --out "$W/models/b.gguf" > /dev/null
echo "setup done at $((SECONDS - T0)) s"
S=examples/suites/gpu-gate.yml
BIN=$LLAMA_BIN/llama-server
deadline=$((T0 + ${BUDGET:-560}))
G=$W/gate
step() { # name, then the tokengate arguments
  local name=$1; shift
  "$NODE" dist/cli.js "$@" > "$G/$name.log" 2>&1
  echo "$name rc=$? at $((SECONDS - T0)) s: $(grep -m1 -E '^Overall' "$G/$name.log" | cut -c1-160)"
}
case ${PHASE:-1} in
1)
  for i in 1 2 3 4; do
    step "base$i" run --suite $S --target llama-server --server-bin "$BIN" --model "$W/models/a.gguf" --out "$G/base$i" --quiet
  done
  mkdir -p "$G/baselines"
  "$NODE" dist/cli.js baseline update --from "$G/base1/results.json" --from "$G/base2/results.json" \
    --from "$G/base3/results.json" --from "$G/base4/results.json" --to "$G/baselines/h200-gpu-gate.json" > "$G/update.log" 2>&1
  echo "baseline update rc=$?"; cat "$G/update.log"
  step nochange run --suite $S --target llama-server --server-bin "$BIN" --model "$W/models/a.gguf" --baseline "$G/baselines" --out "$G/nochange" --quiet
  step slower run --suite $S --target llama-server --server-bin "$BIN" --model "$W/models/b.gguf" --baseline "$G/baselines" --out "$G/slower" --quiet
  ;;
*)
  k=0
  while (( SECONDS + 200 < deadline )); do
    k=$((k + 1))
    if (( k % 2 )); then
      step "aa-p${PHASE}-$k" ab --suite $S --target llama-server --server-bin "$BIN" --model "$W/models/a.gguf" --aa --pairs 3 --out "$G/aa-p${PHASE}-$k" --quiet
    else
      step "ab-p${PHASE}-$k" ab --suite $S --target llama-server --server-bin "$BIN" --base-model "$W/models/a.gguf" --model "$W/models/b.gguf" --pairs 3 --out "$G/ab-p${PHASE}-$k" --quiet
    fi
  done
  ;;
esac
cat /proc/loadavg
cd "$G" && find . -name results.json -o -name report.md -o -name '*.log' -o -path './baselines/*.json' | grep -v '/llama-server' \
  | tar -czf "$OUT/gate-${PHASE:-1}.tar.gz" -T - && ls -la "$OUT"
