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

# Hardening stages (issue 19), part of CI: the suite under AddressSanitizer
# + UBSan + LeakSanitizer, the fuzz harnesses for a bounded time each, the
# threaded tests under ThreadSanitizer. About 20 minutes on 2 cores (most of
# it the two clang builds). KTUNE_HARDENING=0 skips them for a quick local run.
if [ "${KTUNE_HARDENING:-1}" = 0 ]; then
  echo "test.sh: sanitizer and fuzz stages skipped (KTUNE_HARDENING=0)"
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
