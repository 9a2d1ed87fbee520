#!/usr/bin/env bash
# The landscape benchmark (issue 18): search strategies replayed on the
# committed recorded landscapes (bench/landscapes/landscapes.jsonl.gz, made
# by bench/landscape_record.sh), where noise cannot decide.
#
#   bench/landscape_replay.sh [SEEDS] [THREADS] [LANDSCAPES]   (defaults: 20, all cores, the committed file)
#
# Writes the tables (trials to the recorded top 1% and to the best per
# strategy, medians over seeds; the cost model's top-10 recall per feature
# kind) to results/landscape_replay-DATE.md and stdout. Takes minutes, and
# prints the same tables every run.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-20}
threads=${2:-$(nproc)}
landscapes=${3:-bench/landscapes/landscapes.jsonl.gz}
replay=${REPLAY:-./build/bin/ktune-landscape-replay}
[ -x "$replay" ] || ./scripts/build.sh
out=bench/results/landscape_replay-$(date -u +%F).md
{
  echo "# Landscape replay ($(date -u +%F))"
  echo
  echo "- ktune commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- landscapes: \`$landscapes\`; command: \`bench/landscape_replay.sh $seeds\`"
  echo
  "$replay" "$landscapes" --seeds "$seeds" --threads "$threads"
} | tee "$out"
