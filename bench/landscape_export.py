#!/usr/bin/env python3
"""Writes the recorded landscapes of a SQLite tuning log as the compact file
the replay benchmark reads (bench/landscape_replay.sh):

  bench/landscape_export.py LOG.db OUT.jsonl.gz

Line 1: {"format": "ktune-landscapes", "version": 1, "device": <the device
description the log stored>}. Then one line per (workload, template,
template version) on that device, the newest version of each (workload,
template) only: {"workload": KEY, "template": NAME,
"version": V, "configs": [[config_index, median_seconds | null,
error_code], ...]} -- each config once (its first search measurement),
sorted by index; the median over its timed repeats, null when it failed.
"""
import gzip
import json
import sqlite3
import statistics
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: landscape_export.py LOG.db OUT.jsonl.gz")
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    devices = db.execute("SELECT device_key, description FROM devices").fetchall()
    if len(devices) != 1:
        sys.exit(f"{sys.argv[1]}: expected the records of one device, found {len(devices)}")
    device_key, description = devices[0]
    units = {}
    rows = db.execute(
        "SELECT workload_key, template_name, template_version, config_index, costs, error_code "
        "FROM measurements WHERE device_key = ? AND kind = 'search' ORDER BY id", (device_key,))
    for workload, template, version, index, costs, error in rows:
        configs = units.setdefault((workload, template, version), {})
        if index in configs:
            continue
        values = json.loads(costs)
        median = statistics.median(values) if error == 0 and values else None
        configs[index] = [index, median, error]
    # The newest version of each (workload, template): an older one's
    # kernels are not what this build generates.
    newest = {}
    for workload, template, version in units:
        newest[(workload, template)] = max(version, newest.get((workload, template), version))
    units = {k: v for k, v in units.items() if k[2] == newest[(k[0], k[1])]}
    with gzip.open(sys.argv[2], "wt", encoding="utf-8", compresslevel=9) as out:
        header = {"format": "ktune-landscapes", "version": 1, "device": json.loads(description)}
        out.write(json.dumps(header, separators=(",", ":")) + "\n")
        for (workload, template, version), configs in units.items():
            line = {"workload": workload, "template": template, "version": version,
                    "configs": [configs[i] for i in sorted(configs)]}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    print(f"{sys.argv[2]}: {len(units)} landscapes, {sum(len(c) for c in units.values())} configs")


if __name__ == "__main__":
    main()
