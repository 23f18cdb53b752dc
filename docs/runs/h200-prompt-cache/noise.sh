# H200: does llama-server's host prompt cache add run-to-run noise? Interleaved separate runs of the gpu-validate
# suite (3 trials instead of 5 to fit one device call) with the server's defaults (d1..d4) and with --cache-ram 0
# (n1..n4), 7B q4_0. Results: docs/runs/h200-prompt-cache/noise/*.json, read in docs/performance.md.
# On the device machine with carry [".gpu"]:  bash docs/runs/h200-prompt-cache/noise.sh   (~520 s)
set -u
T0=$SECONDS
source .gpu/bootstrap.sh
W=$GPU_WORK; mkdir -p $W/models $W/noise
export TOKENGATE_CACHE_DIR=$W/cache TOKENGATE_VOCAB_DIR=$VOCAB_DIR
[[ -f $W/models/a.gguf ]] || "$NODE" dist/cli.js model synth --preset 7b --type q4_0 --out $W/models/a.gguf > /dev/null
sed 's/^trials: 5/trials: 3/' examples/suites/gpu-validate.yml > $W/d.yml
sed 's/^trials: 5/trials: 3/; s/"-fa", "on"\]/"-fa", "on", "--cache-ram", "0"]/' examples/suites/gpu-validate.yml > $W/n.yml
grep -q cache-ram $W/n.yml || { echo "n.yml has no --cache-ram"; exit 1; }
echo "setup $((SECONDS - T0)) s"
for i in 1 2 3 4; do
  for s in d n; do
    "$NODE" dist/cli.js run --suite $W/$s.yml --target llama-server --server-bin $LLAMA_BIN/llama-server \
      --model $W/models/a.gguf --out $W/noise/$s$i --quiet > $W/noise/$s$i.log 2>&1
    echo "$s$i rc=$? $((SECONDS - T0)) s: $(grep -m2 'ttft p50' $W/noise/$s$i.log | tr -s ' ' | cut -c1-60 | tr '\n' '|')"
    (( SECONDS - T0 > 560 )) && break 2
  done
done
cd $W/noise && for d in */; do cp "${d}results.json" "$OUT/${d%/}.json"; done; ls $OUT
