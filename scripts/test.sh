#!/usr/bin/env bash
# Builds ktune and runs the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
# A private artifact cache per run, so a test never sees stale kernels.
export KTUNE_CACHE_DIR=${KTUNE_CACHE_DIR:-$PWD/build/test-cache}
ctest --test-dir build --output-on-failure -j "$(nproc)"
