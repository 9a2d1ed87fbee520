#!/usr/bin/env bash
# The test suite under sanitizers, built with clang (a stage of
# scripts/test.sh, so CI runs it):
#
#   scripts/sanitize.sh asan   AddressSanitizer + UndefinedBehaviorSanitizer
#                              (+ LeakSanitizer) in build-asan/: every test
#                              except ASAN_EXCLUDE below
#   scripts/sanitize.sh tsan   ThreadSanitizer in build-tsan/: the tests of
#                              the farm, the daemon and its jobs, the worker's
#                              threads and the tuning engine (TSAN_TESTS)
#   scripts/sanitize.sh asan --build-only [TARGET...]
#                              configures and builds only (scripts/fuzz.sh
#                              builds its harnesses in build-asan/ this way)
#
# Everything this project compiles is instrumented: the test programs and
# the processes they start (ktune, its daemon and workers, ktune-runner).
# The kernels ktune generates are compiled at run time by the system
# compiler, uninstrumented. Every process writes its sanitizer reports to
# BUILD/sanitizer-logs/; a report there fails the stage even where the test
# that caused it passed (a child process's report is not its parent's exit
# status).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

kind=${1:-}
shift || true
build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
case "$kind" in
  asan) sanitizers=address,undefined ;;
  tsan) sanitizers=thread ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [--build-only [TARGET...]]" >&2; exit 2 ;;
esac
build=build-$kind
jobs=${KTUNE_BUILD_JOBS:-$(nproc)}

# The ASan build also holds the libFuzzer harnesses (fuzz/): one build of
# the libraries serves both stages. -O1 and line tables keep the build and
# the tests fast enough and the reports readable.
fuzz=OFF
[ "$kind" = asan ] && fuzz=ON
flags="-O1 -gline-tables-only"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$flags" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$flags" \
  -DKTUNE_SANITIZE=$sanitizers -DKTUNE_FUZZ=$fuzz >/dev/null

# What every sanitized process of this stage runs with (the build too: it
# runs the test programs to list their tests). Suppressions name only code
# that is not ktune's, each with its reason (scripts/sanitizers/).
logs=$root/$build/sanitizer-logs
supp=$root/scripts/sanitizers
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
# handle_segv=0 and friends: ktune-runner must die of the signal a crashing
# candidate kernel raises, as it does without sanitizers (the parent reports
# "SIGSEGV"); a sanitizer that caught the signal would turn it into exit 1.
export ASAN_OPTIONS="detect_leaks=1:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:log_path=$logs/asan:external_symbolizer_path=$symbolizer"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
if [ "$kind" = asan ]; then
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan:external_symbolizer_path=$symbolizer"
fi
# ignore_noninstrumented_modules: what Archer asks for (and prints on every
# process's stderr until it is set); the suppressions file says why.
export TSAN_OPTIONS="suppressions=$supp/tsan.supp:ignore_noninstrumented_modules=1:second_deadlock_stack=1:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:log_path=$logs/tsan:external_symbolizer_path=$symbolizer"
# OpenMP regions (the reference implementation in ktune-runner) synchronise
# inside libomp, where TSan cannot see it; Archer, LLVM's OpenMP tool for
# TSan, tells it.
archer=/usr/lib/llvm-14/lib/libarcher.so
if [ "$kind" = tsan ] && [ -f "$archer" ]; then export OMP_TOOL_LIBRARIES=$archer; fi
rm -rf "$logs"
mkdir -p "$logs"

if [ "$build_only" = 1 ]; then
  cmake --build "$build" -j "$jobs" ${1:+--target "$@"}
  exit 0
fi

case "$kind" in
  asan)
    cmake --build "$build" -j "$jobs" --target all_tests ktune ktune-runner
    ;;
  tsan)
    # The code with threads of its own: DeviceFarm (its reaper, leases from
    # many gRPC threads), the worker's lease / heartbeat / measure threads,
    # JobManager's job threads, the daemon and workers as processes (also
    # under a flood of calls: daemon_limits_tests), and the tuning engine's
    # dispatch beside the tuners' pool (TuningEngineTest of tuner_tests;
    # the search-quality tests there train XGBoost for minutes under TSan
    # and run no threads of ktune's own). The other programs run ktune code
    # on one thread (besides OpenMP loops over independent elements); they
    # are left to the ASan stage, which keeps CI in time.
    tsan_programs=(farm_tests farm_process_tests farm_model_tests daemon_limits_tests)
    tsan_names='^TuningEngineTest\.'
    cmake --build "$build" -j "$jobs" --target "${tsan_programs[@]}" tuner_tests ktune ktune-runner
    ;;
esac
# Excluded from both stages, each for a reason a sanitizer cannot change
# (keep this list short and said):
#   AFloodOfClientCallsIsAnsweredAndTheDaemonStaysSmall asserts the daemon's
#   resident memory stays under 512 MiB; ASan's shadow memory and quarantine
#   and TSan's shadow memory (several times the heap) are part of that RSS.
exclude='^DaemonLimitsTest\.AFloodOfClientCallsIsAnsweredAndTheDaemonStaysSmall$'

# A private artifact cache, so a test never sees stale kernels.
export KTUNE_CACHE_DIR=$root/$build/test-cache
status=0
if [ "$kind" = tsan ]; then
  # A test's label is its program.
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -E "$exclude" \
    -L "^($(IFS='|'; echo "${tsan_programs[*]}"))\$" || status=$?
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -R "$tsan_names" || status=$?
else
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -E "$exclude" || status=$?
fi

reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "sanitize.sh $kind: sanitizer reports:" >&2
  for f in $reports; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  status=1
fi
if [ "$status" = 0 ]; then
  echo "sanitize.sh $kind: clean"
fi
exit "$status"
