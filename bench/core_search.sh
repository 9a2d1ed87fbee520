#!/usr/bin/env bash
# Reproduces the core figures: best GFLOP/s after N random trials for
# matmul 1024^3 and the ResNet-18 conv2d C6, and the measurement path's
# throughput (candidates per minute, from the tuning time). Not run by CI.
#
#   bench/core_search.sh [THREADS] [TRIALS]     (defaults: all cores, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-0}
trials=${2:-200}
ktune=./build/bin/ktune
[ -x "$ktune" ] || ./scripts/build.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for op in 'matmul(m=1024,n=1024,k=1024)' 'conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)'; do
  "$ktune" tune --op "$op" --trials "$trials" --tuner random --seed 1 --threads "$threads" \
    --db "$out/bench.db" --cache-dir "$out/cache" --format json 2>/dev/null |
  python3 -c '
import json, sys
for s in json.load(sys.stdin):
    b = s["best"]
    rate = s["trials"] / s["elapsed_s"] * 60
    print(f"{s[\"workload\"]:<72} {s[\"device_key\"]:<24} best {b[\"gflops\"]:7.1f} GFLOP/s"
          f"  {s[\"trials\"]} trials, {s[\"errors\"]} errors, {s[\"elapsed_s\"]:.0f} s, {rate:.0f} candidates/min")
'
done
