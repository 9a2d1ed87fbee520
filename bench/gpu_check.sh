#!/usr/bin/env bash
# Issue 8's GPU checks, for a machine with an NVIDIA GPU (the device tool's
# H100/H200): sized to fit a short device lease.
#
#   bench/gpu_check.sh [TRIALS]   (default 32)
#
# Builds, runs the CUDA tests (on a GPU they measure real kernels) and the
# exported CUDA library's test (on a GPU it runs every kernel), tunes the
# ResNet-18 set and matmul 1024/2048 on cuda:0, and writes
# results/gpu_check-DATE.md: `ktune bench --target cuda:0` against cuBLAS
# and cuDNN (its own algorithm search).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-32}
[ -x build/bin/ktune ] || ./scripts/build.sh
ktune=./build/bin/ktune
out=bench/results/gpu_check-$(date -u +%F).md
db=$(mktemp -d)/gpu.db
{
  echo "# GPU check ($(date -u +%F))"
  echo
  echo '```'
  "$ktune" devices
  KTUNE_CACHE_DIR=$PWD/build/test-cache ./build/bin/cuda_tests 2>&1 | grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|compiled" || true
  ./build/bin/export_cpp_tests --gtest_filter='ExportCuda*' 2>&1 | grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|GPU|FAIL" || true
  echo '```'
  echo
  for set in resnet18; do
    "$ktune" bench --target cuda:0 --set "$set" --trials "$trials" --db "$db" 2>/dev/null
  done
  "$ktune" bench --target cuda:0 --op "matmul(m=1024,n=1024,k=1024)" --op "matmul(m=2048,n=2048,k=2048)" \
    --trials "$trials" --db "$db" 2>/dev/null
  echo
  echo "\`bench/gpu_check.sh $trials\`, ktune $(git rev-parse --short HEAD)"
} > "$out"
cat "$out"
