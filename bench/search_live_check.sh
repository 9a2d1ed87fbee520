#!/usr/bin/env bash
# Issue 18's live confirmation, on workloads outside the landscape set: the
# mean share of the best GFLOP/s that xgb finds in 32 trials against what
# random search finds in 64 (the best known: the best of every run of that
# workload here). No analytical seeds, no transfer, no final re-measurement:
# the strategies alone, each seed from an empty database.
#
#   bench/search_live_check.sh [SEEDS] [THREADS]   (defaults: "1 2 3", 1)
#
# Writes results/search_live_check-DATE.md. Takes about 15 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-"1 2 3"}
threads=${2:-1}
ktune=${KTUNE:-./build/bin/ktune}
[ -x "$ktune" ] || ./scripts/build.sh
workloads=(
  "conv2d(n=1,c=32,h=28,w=28,k=64,r=3,s=3,pad=1)"
  "conv2d(n=1,c=512,h=7,w=7,k=2048,r=1,s=1)"
  "matmul(m=384,n=256,k=640)"
  "dense(batch=4,in=1024,out=512,bias=1)"
  "depthwise_conv2d(n=1,c=32,h=56,w=56,r=3,s=3,stride=2,pad=1)"
)
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
start=$(date +%s)
for seed in $seeds; do
  for i in "${!workloads[@]}"; do
    op=${workloads[$i]}
    for spec in "random 64" "xgb 32"; do
      set -- $spec
      echo "== seed $seed $1 $op" >&2
      "$ktune" tune --op "$op" --tuner "$1" --trials "$2" --seed "$seed" --threads "$threads" --no-seeds \
        --no-transfer --final-top 0 --db "$runs/$1-$seed-$i.db" --format json > "$runs/$1-$seed-$i.json" ||
        echo "failed: $1 $seed $op" >&2
    done
  done
done
end=$(date +%s)
out=bench/results/search_live_check-$(date -u +%F).md
python3 - "$runs" "$seeds" "${#workloads[@]}" "${workloads[@]}" > "$out" <<'PY'
import glob, sqlite3, statistics, sys
runs, seeds, n = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
ops = sys.argv[4:4 + n]
def best(db):
    r = sqlite3.connect(db).execute(
        "SELECT MAX(flops / mean_cost) FROM measurements WHERE error_code = 0").fetchone()[0]
    return r or 0.0
print("| workload | best known GFLOP/s | random, 64 trials | xgb, 32 trials |")
print("| --- | --- | --- | --- |")
shares = {"random": [], "xgb": []}
for i, op in enumerate(ops):
    found = {t: [best(f"{runs}/{t}-{s}-{i}.db") for s in seeds] for t in ("random", "xgb")}
    top = max(max(v) for v in found.values())
    row = {t: [g / top for g in v] for t, v in found.items()}
    for t in shares:
        shares[t] += row[t]
    print(f"| {op} | {top / 1e9:.1f} | {statistics.mean(row['random']):.3f} | {statistics.mean(row['xgb']):.3f} |")
print(f"| mean share of the best | | {statistics.mean(shares['random']):.3f} | {statistics.mean(shares['xgb']):.3f} |")
PY
{
  echo
  echo "- share: the GFLOP/s a run found over the best any run found for that workload, mean over seeds ($seeds)"
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; kernels on $threads thread(s)"
  echo "- ktune commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`bench/search_live_check.sh \"$seeds\" $threads\` ($((end - start)) s)"
} >> "$out"
cat "$out"
