#!/bin/bash
# CPU A/A pool with neighbours: runs 4 and 10 share the machine with two spinning processes, 7 and 13 with one.
cd "$(git rev-parse --show-toplevel)"   # the runs here were made from a frozen copy of the tree
for i in $(seq 1 16); do
  n=0; case $i in 4|10) n=2;; 7|13) n=1;; esac
  pids=()
  for j in $(seq 1 $n); do node -e 'for(;;){}' & pids+=($!); done
  npx tsx src/cli.ts run --out ${OUT:-/tmp/tgb}/c$i --quiet > ${OUT:-/tmp/tgb}/c$i.log 2>&1
  echo "c$i rc=$? neighbours=$n $(date +%T) $(cat /proc/loadavg)"
  for p in "${pids[@]}"; do kill $p; done
  sleep 3
done
