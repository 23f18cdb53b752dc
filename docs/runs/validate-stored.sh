# Stored-baseline rates (`run --baseline` with a 4-run baseline and the confirmation rerun) on the runs of
# docs/runs/{h200,cpu}-gate, by `tokengate validate` (docs/verdicts.md "The gate, end to end"):
#   A = every run of the base configuration (both arms of the A/A gates, arm A of the A/B gates; on the H200 also the
#       4 runs of baselines/h200-gpu-gate.json), B = arm B of the A/B gates. Run from the project root.
set -eu
for m in h200 cpu; do
  cd docs/runs/$m-gate
  A=$(ls -d aa-*/runs/*/results.json ab-*/runs/A-*/results.json)
  [ $m = h200 ] && A="../../../baselines/h200-gpu-gate.json $A"
  B=$(ls ab-*/runs/B-*/results.json)
  npx tsx ../../../src/cli.ts validate --a $A --comparisons 400 --baseline-runs 4 "$@" > validate-aa.txt
  npx tsx ../../../src/cli.ts validate --a $A --b $B --comparisons 400 --baseline-runs 4 "$@" > validate-ab.txt
  cd ../../..
done
