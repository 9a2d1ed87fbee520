#!/usr/bin/env bash
# Builds ktune and runs the whole test suite (what CI runs), then the same
# suite under sanitizers and the fuzz harnesses.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
# A private artifact cache per run, so a test never sees stale kernels.
export KTUNE_CACHE_DIR=${KTUNE_CACHE_DIR:-$PWD/build/test-cache}
ctest --test-dir build --output-on-failure -j "$(nproc)"

# Hardening stages (issue 19): the suite under AddressSanitizer + UBSan, the
# fuzz harnesses for a bounded time each, the threaded tests under
# ThreadSanitizer. Run with KTUNE_HARDENING=1; not yet part of CI: the ASan
# stage still has two LeakSanitizer reports from libgomp's initialisation in
# unloaded kernels (codegen tests), and the stages' time on a CI machine is
# not yet measured end to end.
if [ "${KTUNE_HARDENING:-0}" != 1 ]; then
  echo "test.sh: sanitizer and fuzz stages skipped (KTUNE_HARDENING=1 runs them)"
  exit 0
fi
stage() {
  local start=$SECONDS
  "$@"
  echo "test.sh: '$*' took $((SECONDS - start)) s"
}
stage ./scripts/sanitize.sh asan
stage ./scripts/fuzz.sh
stage ./scripts/sanitize.sh tsan
