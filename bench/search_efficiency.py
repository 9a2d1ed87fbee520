#!/usr/bin/env python3
"""Summarizes bench/search_efficiency.sh's runs (standard library only).

  search_efficiency.py OUT_DIR TRIALS [XGB_RUNS]  > OUT_DIR/summary.md

Reads OUT_DIR/runs/*.db, writes OUT_DIR/curves.csv (strategy, seed,
workload, trial, best-so-far GFLOP/s) and OUT_DIR/curves.svg (the median over
seeds of best-so-far / best ever, per strategy, averaged over the set), and
prints a markdown summary: per workload and strategy, the trials needed to
reach 90% and 95% of the best GFLOP/s ever measured for that workload
(median over seeds; ">N" when a run never got there), then the medians over
the set. Random search's trials to a target are also estimated from its hit
rate: with a share p of its samples at the target, the median of the
geometric distribution, ln 2 / -ln(1 - p), which is not cut off at the budget.
XGB_RUNS, if given, is the folder the xgb and transfer runs are read from
(OUT_DIR/runs by default), to summarize a re-run of those two only.
"""
import math
import csv
import glob
import os
import re
import sqlite3
import statistics
import sys

out, trials = sys.argv[1], int(sys.argv[2])
xgb_runs = sys.argv[3] if len(sys.argv) > 3 else os.path.join(out, "runs")
STRATEGIES = ["random", "ga", "xgb", "xgb+transfer"]

# curves[(strategy, seed, workload)] = best-so-far GFLOP/s after each trial
curves = {}
random_samples = {}  # workload -> every GFLOP/s random search measured (0 for failures)
paths = sorted(set(glob.glob(os.path.join(out, "runs", "*.db")) + glob.glob(os.path.join(xgb_runs, "*.db"))))
for path in paths:
    name = os.path.basename(path)[:-3]
    m = re.fullmatch(r"(random|ga|xgb)-(\d+)", name) or re.fullmatch(r"(transfer)-(\d+)-(\d+)", name)
    if not m:
        continue
    from_xgb_runs = m.group(1) in ("xgb", "transfer")
    in_xgb_runs = os.path.samefile(os.path.dirname(path), xgb_runs)
    if not os.path.samefile(xgb_runs, os.path.join(out, "runs")) and from_xgb_runs != in_xgb_runs:
        continue
    strategy = "xgb+transfer" if m.group(1) == "transfer" else m.group(1)
    seed = int(m.group(2))
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT workload_key, CASE WHEN mean_cost IS NULL THEN 0 ELSE flops / mean_cost / 1e9 END "
        "FROM measurements WHERE kind = 'search' ORDER BY id").fetchall()
    db.close()
    per_workload = {}
    for workload, gflops in rows:
        per_workload.setdefault(workload, []).append(gflops)
    if strategy == "xgb+transfer":
        # The copied history holds the other workloads' xgb runs: only the
        # newest workload (the one tuned with transfer) is this run's.
        last = rows[-1][0] if rows else None
        per_workload = {last: per_workload[last]} if last else {}
    for workload, values in per_workload.items():
        if strategy == "random":
            random_samples.setdefault(workload, []).extend(values[:trials])
        best, curve = 0.0, []
        for v in values[:trials]:
            best = max(best, v)
            curve.append(best)
        curves[(strategy, seed, workload)] = curve

workloads = sorted({w for (_, _, w) in curves})
best_ever = {w: max(max(c) for (s, _, ww), c in curves.items() if ww == w) for w in workloads}

with open(os.path.join(out, "curves.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["strategy", "seed", "workload", "trial", "best_gflops", "best_ever_gflops"])
    for (strategy, seed, workload), curve in sorted(curves.items()):
        for i, v in enumerate(curve):
            w.writerow([strategy, seed, workload, i + 1, f"{v:.3f}", f"{best_ever[workload]:.3f}"])


def trials_to(curve, target):
    for i, v in enumerate(curve):
        if v >= target:
            return i + 1
    return None  # never within the budget


def median_trials(values):
    # Censored runs (None) count as beyond the budget.
    keyed = sorted(v if v is not None else trials + 1 for v in values)
    m = statistics.median(keyed)
    return m


def fmt(m):
    return f">{trials}" if m > trials else f"{m:g}"


print(f"# Search efficiency ({len(workloads)} workloads, up to {trials} trials per run)\n")
print("Trials to reach 90% / 95% of the best GFLOP/s ever measured for the workload (any run), "
      "median over seeds.\n")
print("| workload | best ever GFLOP/s | " + " | ".join(STRATEGIES) + " |")
print("| --- | --- | " + " | ".join("---" for _ in STRATEGIES) + " |")
set_medians = {s: {0.9: [], 0.95: []} for s in STRATEGIES}
for workload in workloads:
    cells = []
    for s in STRATEGIES:
        runs = [c for (st, _, w), c in curves.items() if st == s and w == workload]
        if not runs:
            cells.append("—")
            continue
        parts = []
        for frac in (0.9, 0.95):
            m = median_trials([trials_to(c, frac * best_ever[workload]) for c in runs])
            set_medians[s][frac].append(m)
            parts.append(fmt(m))
        cells.append(" / ".join(parts))
    print(f"| {workload} | {best_ever[workload]:.1f} | " + " | ".join(cells) + " |")
print()
print("Median over the set (a run that never got there counts as beyond the budget):\n")
print("| strategy | trials to 90% | trials to 95% |")
print("| --- | --- | --- |")
for s in STRATEGIES:
    if set_medians[s][0.9]:
        print(f"| {s} | {fmt(statistics.median(set_medians[s][0.9]))} | {fmt(statistics.median(set_medians[s][0.95]))} |")

# Random search, from its hit rate.
print()
print("Random search's expected median trials, from its hit rate over all its runs "
      "(ln 2 / -ln(1 - p), p = share of random samples at the target; \"none in N\" when no sample got there):\n")
print("| workload | samples | to 90% | to 95% |")
print("| --- | --- | --- | --- |")
estimates = {0.9: [], 0.95: []}
for workload in workloads:
    samples = random_samples.get(workload, [])
    if not samples:
        continue
    cells = []
    for frac in (0.9, 0.95):
        p = sum(1 for v in samples if v >= frac * best_ever[workload]) / len(samples)
        est = math.log(2) / -math.log(1 - p) if 0 < p < 1 else (1 if p >= 1 else math.inf)
        estimates[frac].append(est)
        cells.append(f"{est:.0f}" if est < math.inf else f"none in {len(samples)}")
    print(f"| {workload} | {len(samples)} | " + " | ".join(cells) + " |")
if estimates[0.9]:
    def fe(v):
        return f"{v:.0f}" if v < math.inf else "beyond the samples"
    print(f"| **median over the set** | | {fe(statistics.median(estimates[0.9]))} | {fe(statistics.median(estimates[0.95]))} |")

# The plot: per strategy, the mean over workloads of the median over seeds of
# best-so-far / best ever, against the trial.
colors = {"random": "#888888", "ga": "#1f77b4", "xgb": "#d62728", "xgb+transfer": "#2ca02c"}
W, H, L, B = 640, 400, 60, 40
series = {}
for s in STRATEGIES:
    ys = []
    for t in range(trials):
        per_w = []
        for workload in workloads:
            vals = [c[min(t, len(c) - 1)] / best_ever[workload]
                    for (st, _, w), c in curves.items() if st == s and w == workload and c]
            if vals:
                per_w.append(statistics.median(vals))
        if per_w:
            ys.append(sum(per_w) / len(per_w))
    if ys:
        series[s] = ys
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
x0, x1, y0, y1 = L, W - 20, H - B, 20
def px(t):
    return x0 + (x1 - x0) * t / max(1, trials - 1)
def py(v):
    return y0 - (y0 - y1) * v
for v in (0, 0.25, 0.5, 0.75, 0.9, 1.0):
    svg.append(f'<line x1="{x0}" y1="{py(v):.1f}" x2="{x1}" y2="{py(v):.1f}" stroke="#eee"/>')
    svg.append(f'<text x="{x0 - 8}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
for t in range(0, trials + 1, max(1, trials // 6)):
    svg.append(f'<text x="{px(max(0, t - 1)):.1f}" y="{y0 + 18}" text-anchor="middle">{t}</text>')
svg.append(f'<text x="{(x0 + x1) / 2}" y="{H - 4}" text-anchor="middle">trials</text>')
svg.append(f'<text x="14" y="{(y0 + y1) / 2}" transform="rotate(-90 14 {(y0 + y1) / 2})" text-anchor="middle">'
           'best so far / best ever (mean over the set)</text>')
for i, (s, ys) in enumerate(series.items()):
    pts = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in enumerate(ys))
    svg.append(f'<polyline fill="none" stroke="{colors[s]}" stroke-width="2" points="{pts}"/>')
    svg.append(f'<text x="{x1 - 110}" y="{y0 - 20 - 16 * i}" fill="{colors[s]}">{s}</text>')
svg.append("</svg>")
with open(os.path.join(out, "curves.svg"), "w") as f:
    f.write("\n".join(svg) + "\n")
