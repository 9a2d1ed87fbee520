#!/usr/bin/env bash
# Records the search landscapes of the replay benchmark (issue 18): for each
# (workload, template) unit below, a large random sample of its schedule
# space (the template's analytical seeds first), each config measured once
# with 5 timed repeats at 1 thread, into a SQLite log; then
# bench/landscape_export.py writes the compact, committed file
# bench/landscapes/landscapes.jsonl.gz that bench/landscape_replay.sh replays.
#
#   bench/landscape_record.sh [SAMPLE] [CPU]   (defaults: 400 configs per unit, CPU 0)
#   LANDSCAPE_ONLY=REGEX   only the units whose "workload|template" matches (a
#                          template's new version: its units again; the export
#                          keeps the newest version of each unit)
#
# Pinned to one CPU (taskset) so that whatever else runs on the machine stays
# off the timed core. Takes about an hour at 400 per unit. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
sample=${1:-400}
cpu=${2:-0}
ktune=${KTUNE:-./build/bin/ktune}
db=${LANDSCAPE_DB:-bench/landscapes/landscapes.db}
units=(
  "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)|conv2d_cpu_nchwc"
  "conv2d(n=1,c=128,h=28,w=28,k=256,r=3,s=3,stride=2,pad=1)|conv2d_cpu_nchwc"
  "conv2d(n=1,c=24,h=45,w=45,k=40,r=3,s=3,stride=1,pad=1)|conv2d_cpu_nchwc"
  "conv2d(n=1,c=3,h=224,w=224,k=32,r=3,s=3,stride=2,pad=0)|conv2d_cpu_nchw"
  "conv2d(n=1,c=256,h=14,w=14,k=1024,r=1,s=1)|conv2d_1x1_cpu_gemm"
  "conv2d(n=1,c=64,h=56,w=56,k=128,r=1,s=1,stride=2)|conv2d_1x1_cpu_gemm"
  "depthwise_conv2d(n=1,c=144,h=56,w=56,r=3,s=3,pad=1)|depthwise_conv2d_cpu_nchw"
  "depthwise_conv2d(n=1,c=96,h=112,w=112,r=3,s=3,stride=2,pad=1)|depthwise_conv2d_cpu_nchwc"
  "dense(batch=1,in=512,out=1000,bias=1)|dense_cpu_packed"
  "dense(batch=1,in=768,out=3072,bias=1)|dense_cpu_packed"
  "matmul(m=512,n=512,k=512)|matmul_cpu_packed"
  "matmul(m=128,n=768,k=3072)|matmul_cpu_packed"
  "matmul(m=100,n=300,k=77)|matmul_cpu_packed"
  "batch_matmul(b=12,m=128,n=128,k=64)|batch_matmul_cpu_packed"
)
for unit in "${units[@]}"; do
  [[ -z ${LANDSCAPE_ONLY:-} || $unit =~ $LANDSCAPE_ONLY ]] || continue
  op=${unit%|*} tmpl=${unit#*|}
  echo "== $(date -u +%T) $op with $tmpl" >&2
  taskset -c "$cpu" "$ktune" tune --op "$op" --template "$tmpl" --tuner random --trials "$sample" --threads 1 \
    --repeat 5 --final-top 0 --no-transfer --seed 7 --db "$db" --format json >/dev/null ||
    echo "failed: $op $tmpl" >&2
done
python3 bench/landscape_export.py "$db" bench/landscapes/landscapes.jsonl.gz
