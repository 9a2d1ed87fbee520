#!/usr/bin/env bash
# Issue 7's check: do exported kernels run at the time measured while tuning?
#
#   bench/export_timing.sh [TRIALS] [THREADS]    (defaults: 32, 1)
#
# Tunes a set of workloads (ResNet-18 convs, a matmul, a dense) into a private
# database, exports them with `ktune export --format cpp`, builds the exported
# tree as a separate CMake project with bench/export_timing_main.cc as the
# user's program, and times every kernel through the library's C API. Writes
# results/export_timing-DATE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-32}
threads=${2:-1}
ktune=$PWD/build/bin/ktune
[ -x "$ktune" ] || ./scripts/build.sh
work=$(mktemp -d)
ops=(
  "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=128,h=28,w=28,k=128,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=256,h=14,w=14,k=256,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=512,h=7,w=7,k=512,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=128,h=28,w=28,k=256,r=1,s=1,stride=2,pad=0)"
  "depthwise_conv2d(n=1,c=144,h=56,w=56,r=3,s=3,stride=1,pad=1)"
  "matmul(m=512,n=512,k=512)"
  "dense(batch=1,in=512,out=1000,bias=1)"
)
for op in "${ops[@]}"; do
  "$ktune" tune --op "$op" --trials "$trials" --threads "$threads" --db "$work/t.db" --format json > /dev/null
done
"$ktune" export --format cpp --db "$work/t.db" --out "$work/kernels"
mkdir -p "$work/user"
cp bench/export_timing_main.cc "$work/user/main.cc"
cat > "$work/user/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(user CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_BUILD_TYPE Release)
add_subdirectory($work/kernels kernels)
add_executable(user main.cc)
target_link_libraries(user PRIVATE ktune::kernels)
CMAKE
cmake -S "$work/user" -B "$work/user/build" > /dev/null
cmake --build "$work/user/build" -j"$(nproc)" > /dev/null
out=bench/results/export_timing-$(date -u +%F).md
{
  echo "# Exported kernels against their tuning measurements ($(date -u +%F))"
  echo
  echo "\`bench/export_timing.sh $trials $threads\` on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), ktune $(git rev-parse --short HEAD). Tuned with $trials trials each on $threads thread(s); the exported library built by CMake as a separate project and timed from its C API (plans), 10 repeats of >= 20 ms, the mean, against the best record's mean."
  echo
  "$work/user/build/user"
} > "$out"
cat "$out"
rm -rf "$work"
