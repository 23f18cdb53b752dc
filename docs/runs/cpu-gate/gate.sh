# Issue 12 on the 2-core CPU machine (docs/verdicts.md "The gate, end to end"), all through the real CLI (dist/cli.js):
#   1. the committed CPU baseline: 5 runs of the default quick suite (in-process, embedded tiny model) -> baseline update
#   2. run --baseline baselines/: the same configuration (pass expected) and the in-process target with the seed's
#      request batching on (new prompts wait up to 3 ms for company: slower at these loads)
#   3. tokengate ab on llama-server (tiny model): an A/A pool of 10 pairs (--aa), then real A/B gates of 3 pairs:
#      -t 1 (base) vs -t 2 (head; the server then fights the client for the 2 cores), and A/A gates of 3 pairs
# Usage, from the project root on a quiet machine:  bash docs/runs/cpu-gate/gate.sh OUTDIR   (~15 minutes)
set -u
O=${1:?output folder}
mkdir -p "$O"
T0=$SECONDS
tg() { node dist/cli.js "$@"; }
step() { # name, then tokengate arguments
  local name=$1; shift
  tg "$@" > "$O/$name.log" 2>&1
  echo "$name rc=$? at $((SECONDS - T0)) s: $(grep -m1 -E '^Overall' "$O/$name.log" | cut -c1-150) | load $(cut -d' ' -f1 /proc/loadavg)"
}
for i in 1 2 3 4 5; do step "base$i" run --out "$O/base$i" --quiet; done
tg baseline update --from "$O/base1/results.json" --from "$O/base2/results.json" --from "$O/base3/results.json" \
  --from "$O/base4/results.json" --from "$O/base5/results.json" --to "$O/baselines/cpu-quick.json" > "$O/update.log" 2>&1
echo "baseline update rc=$?"; cat "$O/update.log"
step nochange run --baseline "$O/baselines" --out "$O/nochange" --quiet
sed 's/^name: quick/name: quick\ntarget:\n  batching: { maxBatchSize: 8, maxWaitMs: 3 }/' examples/suites/quick.yml > "$O/quick-batching.yml"
step batching run --suite "$O/quick-batching.yml" --baseline "$O/baselines" --out "$O/batching" --quiet
LS="--target llama-server --quiet"
step aa-pool ab $LS --server-flags="-t 1" --aa --pairs 10 --out "$O/aa-pool"
for k in 1 2; do
  step "ab-$k" ab $LS --base-server-flags="-t 1" --server-flags="-t 2" --pairs 3 --out "$O/ab-$k"
  step "aa-$k" ab $LS --server-flags="-t 1" --aa --pairs 3 --out "$O/aa-$k"
done
echo "done at $((SECONDS - T0)) s"
