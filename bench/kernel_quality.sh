#!/usr/bin/env bash
# Kernel quality against the vendor libraries (issue 3's benchmark set):
# tunes every workload of the resnet18, matmul and depthwise sets with a
# stated budget, at 1 thread and at all cores, then writes the `ktune bench`
# tables (tuned vs OpenBLAS / oneDNN, side by side in one process) into
# bench/results/kernel_quality-<date>.md (+ .json). Not run by CI. It computes
# no ratio itself: the headline is ktune bench's tuned/fastest (against the
# fastest baseline of any library per workload; JSON ratio_vs_fastest and
# geomean_ratio_vs_fastest), the per-library columns are for information.
#
#   bench/kernel_quality.sh [TRIALS] [SETS]   (defaults: 200, "matmul resnet18 depthwise")
#
# OpenBLAS runs with the kernels it picks for this CPU itself: a machine that
# sets OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) to pin older kernels would
# otherwise give the baseline a handicap. Both are unset for these commands
# only; `ktune bench` checks every side's output against the reference, and
# prints which OpenBLAS kernels answered.
set -euo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cd "$(dirname "$0")/.."
trials=${1:-200}
sets=${2:-"matmul resnet18 depthwise"}
ktune=./build/bin/ktune
[ -x "$ktune" ] || ./scripts/build.sh
mkdir -p bench/results
db=bench/results/kernel_quality.db   # kept between runs (not committed): re-runs resume
stamp=$(date -u +%F)
md=bench/results/kernel_quality-$stamp.md
json=bench/results/kernel_quality-$stamp.json
{
  echo "# Kernel quality: tuned vs vendor libraries ($stamp)"
  echo
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo "- ktune commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- budget: $trials trials per workload and thread count (each template's analytical seeds first, then random search; a 1x1 conv2d's trials shared by its two templates), then \`ktune bench\`"
  echo "- OpenBLAS: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, so it picks its own kernels for this CPU (named in each row)"
  echo "- ratio: tuned/fastest = ktune's GFLOP/s over the fastest baseline of any library (OpenBLAS, oneDNN) for that workload, named in each row; > 1: ktune is faster. tuned/openblas and tuned/onednn: against each library alone, for information"
  echo "- command: \`bench/kernel_quality.sh $trials \"$sets\"\`, i.e. for each set and T in 1 $(nproc):"
  echo "  \`ktune bench --set SET --threads T --trials $trials --db $db\`"
  echo
} > "$md"
echo "[" > "$json"
first=1
for threads in 1 "$(nproc)"; do
  for set in $sets; do
    echo "== $set, $threads thread(s)" >&2
    echo "## $set, $threads thread(s)" >> "$md"
    echo '```' >> "$md"
    "$ktune" bench --set "$set" --threads "$threads" --trials "$trials" --db "$db" >> "$md" || true
    echo '```' >> "$md"
    [ $first -eq 1 ] || echo "," >> "$json"
    first=0
    "$ktune" bench --set "$set" --threads "$threads" --db "$db" --format json >> "$json" || echo null >> "$json"
  done
done
echo "]" >> "$json"
echo "wrote $md and $json" >&2
