#!/usr/bin/env bash
# Where a trial's wall time goes (issue 18, part 6): tunes seven workloads of
# different operators and templates from an empty database and an empty
# artifact cache (every candidate compiled), at all cores, and splits each
# run's wall time into compiling, checking and timing, the search, the final
# re-measurement and the rest, from the records' build_seconds and
# run_seconds. Writes bench/results/trial_time-<date>.md. Not run by CI.
#
#   bench/trial_time.sh [TRIALS] [KTUNE...]   (defaults: 64, ./build/bin/ktune)
#
# With several ktune binaries (say the build before a change and after), each
# workload is tuned by each in turn, alternating which goes first, so that a
# slow spell of this shared machine does not fall on one of them. Every run
# uses the same seed; the first batch (the seeds and random configs) is the
# same for all binaries, the later ones follow each run's own measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-64}
shift || true
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(./build/bin/ktune)
for b in "${binaries[@]}"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }; done
command -v sqlite3 > /dev/null || { echo "needs the sqlite3 command-line tool" >&2; exit 2; }
workloads=(
  'conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)'
  'conv2d(n=1,c=256,h=14,w=14,k=256,r=3,s=3,stride=1,pad=1)'
  'conv2d(n=1,c=128,h=28,w=28,k=256,r=1,s=1,stride=2,pad=0)'
  'depthwise_conv2d(n=1,c=144,h=56,w=56,r=3,s=3,stride=1,pad=1)'
  'depthwise_conv2d(n=1,c=240,h=28,w=28,r=5,s=5,stride=2,pad=2)'
  'matmul(m=512,n=512,k=512)'
  'dense(batch=1,in=512,out=1000)'
)
work=$(mktemp -d /tmp/ktune-trial-time.XXXXXX)
trap 'rm -rf "$work"' EXIT
stamp=$(date -u +%F)
mkdir -p bench/results
md=bench/results/trial_time-$stamp.md
rows=$work/rows.tsv
: > "$rows"
n=0
for w in "${workloads[@]}"; do
  order=("${binaries[@]}")
  if [ $((n % 2)) -eq 1 ] && [ ${#binaries[@]} -gt 1 ]; then  # alternate who goes first
    order=("${binaries[@]:1}" "${binaries[0]}")
  fi
  n=$((n + 1))
  for b in "${order[@]}"; do
    run=$work/run-$n-$(echo "$b" | md5sum | cut -c1-8)
    mkdir -p "$run"
    echo "== $w with $b" >&2
    start=$(date +%s.%N)
    KTUNE_CACHE_DIR=$run/cache "$b" tune --op "$w" --trials "$trials" --seed 1 --db "$run/t.db" > "$run/out.txt" 2>&1 ||
      { cat "$run/out.txt" >&2; exit 1; }
    end=$(date +%s.%N)
    search=$(grep -o '([0-9.]* s in the search)' "$run/out.txt" | head -1 | grep -o '[0-9.]*' | head -1)
    q() { sqlite3 "$run/t.db" "$1"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$w" \
      "$(q "select count(*) from measurements where kind='search'")" \
      "$(echo "$end - $start" | bc)" \
      "$(q "select total(build_seconds) from measurements where kind='search'")" \
      "$(q "select count(*) from measurements where kind='search' and build_seconds > 0")" \
      "$(q "select total(run_seconds) from measurements where kind='search'")" \
      "$(q "select total(run_seconds) from measurements where kind='final'")" \
      "${search:-0}" >> "$rows"
  done
done

python3 - "$rows" "$trials" "$(nproc)" > "$md" << 'EOF'
import sys, collections
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
trials, cores = sys.argv[2], int(sys.argv[3])
print(f"# Where a trial's wall time goes ({__import__('datetime').date.today()})\n")
print(f"`bench/trial_time.sh {trials} {' '.join(sorted(set(r[0] for r in rows), key=[r[0] for r in rows].index))}`: "
      f"each workload tuned from an empty database and artifact cache, {trials} trials, {cores} threads "
      f"(all cores), seed 1, the default search (xgb with the analytical seeds). Per trial:\n")
print("- **wall**: the run's wall time (process start to exit, the final re-measurement included) over its trials;")
print(f"- **compile**: the compiler's wall per candidate compiled ({cores} compiled at once; each one's "
      "own wall, summed, over the trials), i.e. about the trial's share of the compile phase times the parallelism;")
print("- **check+time**: the runner (check against the reference, calibration, repeats);")
print("- **search**: the tuner (cost model, proposals); **final**: the re-measurement of the finalists;")
print("- **rest**: the wall not in the phases above, with compile counted as its sum over the parallel builds "
      f"divided by {cores} (code generation, the database, process start).\n")
print("| ktune | workload | trials | wall s/trial | compile s/candidate | compiled | check+time s/trial | search s/trial | final s | rest s/trial |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
tot = collections.defaultdict(lambda: [0.0] * 6)
for b, w, n, wall, build, built, run, final, search in rows:
    n, wall, build, built, run, final, search = int(n), float(wall), float(build), int(built), float(run), float(final), float(search)
    rest = wall - build / cores - run - final - search
    print(f"| {b} | `{w}` | {n} | {wall / n:.3f} | {build / max(built, 1):.3f} | {built} | {run / n:.3f} | {search / n:.3f} | {final:.2f} | {rest / n:.3f} |")
    t = tot[b]
    for i, v in enumerate((n, wall, build, built, run, search + final + rest)):
        t[i] += v
print("\n| ktune | trials | wall s/trial | compile s/candidate | compile wall s/trial | check+time s/trial | search+final+rest s/trial |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for b, (n, wall, build, built, run, other) in tot.items():
    print(f"| {b} | {int(n)} | **{wall / n:.3f}** | {build / max(built, 1):.3f} | {build / cores / n:.3f} | {run / n:.3f} | {other / n:.3f} |")
EOF
echo "wrote $md" >&2
