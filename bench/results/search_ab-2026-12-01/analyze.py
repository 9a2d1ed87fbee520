import sqlite3, glob, math, collections
res = collections.defaultdict(dict)
for f in glob.glob('/tmp/ab/*-*-*.db'):
    name = f.split('/')[-1][:-3]
    v, seed, i = name.split('-')
    rows = sqlite3.connect(f).execute("select mean_cost, flops from measurements order by id").fetchall()
    best = 0; curve = []
    for c, fl in rows:
        if c: best = max(best, fl / c / 1e9)
        curve.append(best)
    res[(int(i), int(seed))][v] = curve
print("workload seed | old best@32 @64 @128 | new best@32 @64 @128")
ratios = collections.defaultdict(list)
for (i, seed), d in sorted(res.items()):
    if 'old' not in d or 'new' not in d: continue
    top = max(max(d['old']), max(d['new']))
    line = f"W{i} s{seed} |"
    for v in ('old', 'new'):
        c = d[v]
        pts = [c[min(n, len(c)) - 1] for n in (32, 64, 128)]
        line += " " + " ".join(f"{p:6.1f}" for p in pts) + " |"
        for n, p in zip((32, 64, 128), pts): ratios[(v, n)].append(p / top)
        # trials to 95% of top
    print(line)
for n in (32, 64, 128):
    for v in ('old', 'new'):
        r = ratios[(v, n)]
        if r: print(f"{v} @{n}: mean of best/top {sum(r)/len(r):.3f} over {len(r)} runs")
