#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) and runs each one for a bounded
# time from its seed corpus (a stage of scripts/test.sh, so CI runs it).
#
#   scripts/fuzz.sh [HARNESS...]    every harness when none is named
#   KTUNE_FUZZ_SECONDS=N            seconds per harness (default 25)
#
# The harnesses are built in build-asan/ (scripts/sanitize.sh asan
# --build-only): clang, libFuzzer, AddressSanitizer and UBSan. They run
# nproc at a time. A crash, a sanitizer report, an exception the parser does
# not document, a broken property, a hang (10 s on one input) or memory
# over 2 GiB fails the stage; the input that did it is kept in
# build-asan/fuzz-findings/HARNESS/ and its log printed. Inputs that found
# new code go to build-asan/fuzz-corpus/HARNESS/ (kept between local runs;
# fuzz/corpus/ is read only). The end is a table of executions per harness.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${KTUNE_FUZZ_SECONDS:-25}
build=$root/build-asan

./scripts/sanitize.sh asan --build-only fuzzers

if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  harnesses=()
  for d in fuzz/corpus/*/; do harnesses+=("$(basename "$d")"); done
fi

# No leak checks while fuzzing: libFuzzer's own leak detection would stop a
# run at the first leak of a long-lived parser cache; the sanitize stage
# checks leaks on the tests.
export ASAN_OPTIONS="detect_leaks=0:handle_abort=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
logs=$build/fuzz-logs
rm -rf "$logs"
mkdir -p "$logs"

run_one() {
  local h=$1
  local findings=$build/fuzz-findings/$h
  local corpus=$build/fuzz-corpus/$h
  rm -rf "$findings"
  mkdir -p "$findings" "$corpus"
  "$build/fuzz/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "$root/fuzz/corpus/$h" >"$logs/$h.log" 2>&1
}
export -f run_one
export build root seconds logs

status=0
printf '%s\n' "${harnesses[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run_one {}' || status=$?

printf '%-24s %12s %10s %s\n' harness executions exec/s result
for h in "${harnesses[@]}"; do
  log=$logs/$h.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if grep -qE '^(==[0-9]+==ERROR|SUMMARY: |.*runtime error:|ktune fuzz: property broken)|deadly signal|Test unit written' "$log"; then
    result=FOUND
  fi
  printf '%-24s %12s %10s %s\n' "$h" "${runs:-?}" "${rate:-?}" "$result"
  if [ "$result" != ok ]; then
    status=1
    echo "---- $log" >&2
    tail -60 "$log" >&2
  fi
done
exit "$status"
