#!/usr/bin/env bash
# Issue 6's figures: a whole model tuned with one budget, then its report.
#
#   bench/model_tuning.sh [MODEL] [TRIALS] [THREADS]   (defaults: resnet18, 480, all cores)
#
# Exports the model with bench/export_models.py (Debian's python3-torch and
# python3-torchvision) if bench/models/MODEL.onnx is missing, tunes it into
# a private database, and writes results/model_tuning-MODEL-DATE.md (the
# summary table, vendor libraries timed on the spot) and .html (ktune report).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet18}
trials=${2:-480}
threads=${3:-0}
ktune=./build/bin/ktune
[ -x "$ktune" ] || ./scripts/build.sh
[ -f "bench/models/$model.onnx" ] || /usr/bin/python3 bench/export_models.py bench/models
out=bench/results/model_tuning-$model-$(date -u +%F)
db=$(mktemp -d)/model.db
thread_flag=()
[ "$threads" = 0 ] || thread_flag=(--threads "$threads")
start=$(date +%s)
"$ktune" tune "bench/models/$model.onnx" --trials "$trials" --db "$db" "${thread_flag[@]}" > "$out.txt"
end=$(date +%s)
"$ktune" report --db "$db" --model "bench/models/$model.onnx" --out "$out.html" --title "ktune: $model"
{
  echo "# $model tuned with $trials trials ($(date -u +%F))"
  echo
  echo "\`bench/model_tuning.sh $model $trials $threads\`: $((end - start)) s wall time on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; ktune $(git rev-parse --short HEAD)."
  echo "vs untuned: over the task's default config (first template's first seed); vs vendor: oneDNN (convs) or OpenBLAS (dense), timed in-process at the end of the run."
  cat "$out.txt"
} > "$out.md"
rm -f "$out.txt"
echo "wrote $out.md and $out.html" >&2
