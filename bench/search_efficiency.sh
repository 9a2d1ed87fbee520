#!/usr/bin/env bash
# Search efficiency (issue 4): how many measured trials each search strategy
# needs to find a fast kernel, on live measurements.
#
#   bench/search_efficiency.sh [TRIALS] [SEEDS] [THREADS]   (defaults: 96, "1 2 3", 1)
#
# For every workload of the set and every seed: random, ga and xgb (without
# transfer), each from an empty database; then xgb with transfer, whose
# history is the xgb runs of the *other* workloads of the set with the same
# seed. No analytical seed configs (--no-seeds: the strategies alone), no
# final re-measurement. Writes bench/results/search_efficiency-<date>/:
# runs/*.db (every measurement), curves.csv (best-so-far GFLOP/s per trial),
# curves.svg, summary.md (trials to reach 90% / 95% of the best GFLOP/s ever
# measured for the workload, medians over the set). Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-96}
seeds=${2:-"1 2 3"}
threads=${3:-1}
ktune=./build/bin/ktune
[ -x "$ktune" ] || ./scripts/build.sh
workloads=(
  "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=64,h=56,w=56,k=128,r=3,s=3,stride=2,pad=1)"
  "conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=128,h=28,w=28,k=256,r=3,s=3,stride=2,pad=1)"
  "conv2d(n=1,c=256,h=14,w=14,k=256,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=512,h=7,w=7,k=512,r=3,s=3,stride=1,pad=1)"
  "matmul(m=512,n=512,k=512)"
  "matmul(m=128,n=768,k=3072)"
  "dense(batch=1,in=512,out=1000,bias=1)"
)
out=bench/results/search_efficiency-$(date -u +%F)
mkdir -p "$out/runs"
common=(--trials "$trials" --threads "$threads" --no-seeds --final-top 0 --format json)
run() {  # run DB TUNER SEED OP [extra flags]
  local db=$1 tuner=$2 seed=$3 op=$4
  shift 4
  "$ktune" tune --op "$op" --tuner "$tuner" --seed "$seed" --db "$db" "${common[@]}" "$@" \
    >> "$out/runs/summaries.jsonl" 2>> "$out/runs/log.txt" || echo "failed: $tuner $seed $op" >&2
}
start=$(date +%s)
tuners=${TUNERS:-"random ga xgb"}  # TUNERS=xgb: re-run xgb (and transfer) only, keeping the others' runs
for seed in $seeds; do
  for tuner in $tuners; do
    for op in "${workloads[@]}"; do
      echo "== seed $seed $tuner $op" >&2
      run "$out/runs/$tuner-$seed.db" "$tuner" "$seed" "$op" --no-transfer
    done
  done
  # Transfer: the history is the other workloads' xgb runs of this seed.
  [[ " $tuners " == *" xgb "* ]] || continue
  for i in "${!workloads[@]}"; do
    op=${workloads[$i]}
    db=$out/runs/transfer-$seed-$i.db
    cp "$out/runs/xgb-$seed.db" "$db"
    key=$("$ktune" space --op "$op" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["workload"])')
    sqlite3 "$db" "DELETE FROM best WHERE workload_key = '$key'; DELETE FROM measurements WHERE workload_key = '$key';"
    echo "== seed $seed xgb+transfer $op" >&2
    run "$db" xgb "$seed" "$op"
  done
done
end=$(date +%s)
python3 bench/search_efficiency.py "$out" "$trials" > "$out/summary.md"
{
  echo
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; kernels on $threads thread(s)"
  echo "- ktune commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`bench/search_efficiency.sh $trials \"$seeds\" $threads\` (live measurement; $((end - start)) s)"
} >> "$out/summary.md"
echo "wrote $out/summary.md, curves.csv, curves.svg" >&2
