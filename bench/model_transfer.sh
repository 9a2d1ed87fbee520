#!/usr/bin/env bash
# Issue 18, part 3 (transfer a user feels): tunes model FROM into a fresh
# database, then model TO twice from copies of it — with transfer (xgb learns
# from FROM's records on the same device key) and with --no-transfer — and
# prints TO's estimated operator time at each quarter of the budget (from the
# progress lines) and at the end (after the final re-measurement).
#   bench/model_transfer.sh [FROM] [TO] [TRIALS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
from=${1:-resnet18}
to=${2:-mobilenet_v2}
trials=${3:-480}
threads=${4:-0}
ktune=./build/bin/ktune
[ -x "$ktune" ] || ./scripts/build.sh
for m in "$from" "$to"; do
  [ -f "bench/models/$m.onnx" ] || /usr/bin/python3 bench/export_models.py bench/models
done
dir=$(mktemp -d)
thread_flag=()
[ "$threads" = 0 ] || thread_flag=(--threads "$threads")
"$ktune" tune "bench/models/$from.onnx" --trials "$trials" --db "$dir/from.db" "${thread_flag[@]}" > "$dir/from.txt" 2>&1
out=bench/results/model_transfer-$from-to-$to-$(date -u +%F).md
{
  echo "# $to tuned after $from, with and without transfer ($(date -u +%F))"
  echo
  echo "\`bench/model_transfer.sh $from $to $trials $threads\` on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; ktune $(git rev-parse --short HEAD)."
  echo "$from: $(grep -m1 '^estimated operator time' "$dir/from.txt")"
  echo
  echo "| run | 1/4 | 2/4 | 3/4 | end of search | final (re-measured) | vendor |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} > "$out"
for mode in transfer no-transfer; do
  cp "$dir/from.db" "$dir/$mode.db"
  flags=()
  [ "$mode" = transfer ] || flags=(--no-transfer)
  "$ktune" tune "bench/models/$to.onnx" --trials "$trials" --db "$dir/$mode.db" "${thread_flag[@]}" "${flags[@]}" \
    > "$dir/$mode.txt" 2>&1
  row="| $mode"
  progress=$(grep -o '\[[0-9]*/[0-9]*\].*estimated operator time [0-9.]* [mu]s' "$dir/$mode.txt" || true)
  for q in 1 2 3; do
    want=$((trials * q / 4))
    est=$(echo "$progress" | awk -v want="$want" -F'[][/]' '$2 >= want { sub(/.*estimated operator time /, ""); print; exit }')
    row="$row | ${est:--}"
  done
  last=$(echo "$progress" | tail -1 | sed 's/.*estimated operator time //')
  row="$row | ${last:--}"
  final=$(grep -m1 '^estimated operator time' "$dir/$mode.txt" | sed 's/estimated operator time: //')
  row="$row | ${final%%,*} | $(echo "$final" | grep -o '[0-9.]* [mu]s with the vendor libraries.*' | sed 's/ with the vendor libraries//')"
  echo "$row |" >> "$out"
done
echo >> "$out"
echo "Estimates during the search are weight x best search time per task; the final one is after the re-measurement of each task's finalists." >> "$out"
echo "wrote $out (logs in $dir)" >&2
