#!/usr/bin/env python3
"""Farm scaling by simulation: one model job on 1, 2, 4, ... simulated workers.

  bench/farm_scaling.py MODEL.onnx [--trials 2000] [--workers 1,2,4,8,16,32,64]
                        [--delay-ms 300] [--ktune build/bin/ktune] [--out FILE.md]
                        [--submit-arg=--no-seeds ...]

For each worker count: a fresh `ktune daemon` on loopback with its own
database, that many `ktune worker --simulate --simulate-ms DELAY` processes
(a simulated device answers each candidate with a deterministic cost computed
from its loop nest after DELAY ms, as a real CPU candidate takes about 300 ms),
then `ktune submit MODEL --trials N` and `ktune job ID` polled until it is done.
Reports the wall time from submission to done, the speedup over one worker,
the candidates in flight (mean and most of the polled samples, and the most
the daemon's engine had), the daemon's CPU time (user + system, from /proc)
per measured item, and the model's estimated operator time at the end.

Needs only the Python standard library and a built ktune. Everything runs on
this machine: the daemon and every worker share its cores.
"""
import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def run(ktune, args, timeout=60):
    out = subprocess.run([ktune] + args, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"ktune {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def one_run(ktune, model, trials, workers, delay_ms, key, submit_args):
    work = tempfile.mkdtemp(prefix=f"ktune-scaling-{workers}-")
    port = free_port()
    address = f"127.0.0.1:{port}"
    db = os.path.join(work, "farm.db")
    env = dict(os.environ, KTUNE_CACHE_DIR=os.path.join(work, "cache"))
    env.pop("KTUNE_TOKEN", None)
    daemon_log = open(os.path.join(work, "daemon.log"), "w")
    daemon = subprocess.Popen([ktune, "daemon", "--listen", address, "--db", db, "--log-level", "info"],
                              stdout=daemon_log, stderr=subprocess.STDOUT, env=env)
    procs = []
    try:
        deadline = time.time() + 30
        while "listening on" not in open(os.path.join(work, "daemon.log")).read():
            if time.time() > deadline or daemon.poll() is not None:
                raise RuntimeError("the daemon did not start: " + open(os.path.join(work, "daemon.log")).read())
            time.sleep(0.05)
        for i in range(workers):
            log = open(os.path.join(work, f"worker{i}.log"), "w")
            procs.append(subprocess.Popen(
                [ktune, "worker", "--daemon", address, "--simulate", "--simulate-ms", str(delay_ms), "--key", key,
                 "--name", f"sim{i}", "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT, env=env))
        deadline = time.time() + 60
        while len(json.loads(run(ktune, ["workers", "--daemon", address, "--format", "json"]))) < workers:
            if time.time() > deadline:
                raise RuntimeError("the workers did not all register")
            time.sleep(0.2)
        cpu0 = cpu_seconds(daemon.pid)
        t0 = time.time()
        job = json.loads(run(ktune, ["submit", model, "--daemon", address, "--device-key", key, "--trials",
                                     str(trials), "--format", "json"] + submit_args))["job_id"]
        samples = []
        while True:
            status = json.loads(run(ktune, ["job", job, "--daemon", address, "--format", "json"]))
            if status["state"] in ("done", "failed", "cancelled"):
                break
            samples.append(status.get("in_flight", 0))
            time.sleep(0.5)
        wall = time.time() - t0
        cpu = cpu_seconds(daemon.pid) - cpu0
        if status["state"] != "done":
            raise RuntimeError(f"job {job} ended {status['state']}: {status.get('message', '')}")
        con = sqlite3.connect(db)
        search, finals = con.execute(
            "SELECT sum(kind = 'search'), sum(kind = 'final') FROM measurements WHERE job = ?", (job,)).fetchone()
        con.close()
        most = re.findall(r"most in flight at once: (\d+)", open(os.path.join(work, "daemon.log")).read())
        return {
            "workers": workers, "wall_s": wall, "daemon_cpu_s": cpu, "search": search, "finals": finals,
            "in_flight_mean": sum(samples) / len(samples) if samples else 0,
            "in_flight_max": max(samples) if samples else 0,
            "engine_most_in_flight": int(most[-1]) if most else None,
            "estimated_s": status.get("estimated_s", 0), "untuned_s": status.get("untuned_s", 0),
            "tasks": {t["workload_key"]: t.get("trials_done", 0) for t in status["tasks"]},
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        for p in procs:
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--workers", default="1,2,4,8,16,32,64")
    ap.add_argument("--delay-ms", type=int, default=300)
    ap.add_argument("--ktune", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin", "ktune"))
    ap.add_argument("--key", default="sim/scaling")
    ap.add_argument("--out", default="")
    ap.add_argument("--json", default="", help="also write the raw results here")
    ap.add_argument("--submit-arg", action="append", default=[], help="passed to ktune submit (repeatable)")
    a = ap.parse_args()
    counts = [int(x) for x in a.workers.split(",")]
    results = []
    for n in counts:
        r = one_run(os.path.abspath(a.ktune), os.path.abspath(a.model), a.trials, n, a.delay_ms, a.key, a.submit_arg)
        results.append(r)
        print(f"{n} workers: {r['wall_s']:.1f} s, daemon CPU {r['daemon_cpu_s']:.1f} s, "
              f"in flight {r['in_flight_mean']:.0f} mean / {r['engine_most_in_flight']} most, "
              f"estimated {r['estimated_s'] * 1e3:.3f} ms", file=sys.stderr, flush=True)
    base = results[0]
    lines = [
        f"| workers | wall s | speedup | of linear | in flight: mean / most | daemon CPU s | CPU ms per item "
        f"| estimated model time | vs {base['workers']} worker |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        speedup = base["wall_s"] * base["workers"] / r["wall_s"] if r["wall_s"] > 0 else 0
        items = (r["search"] or 0) + (r["finals"] or 0)
        lines.append(
            f"| {r['workers']} | {r['wall_s']:.1f} | {speedup:.1f}x | {speedup / r['workers']:.2f} "
            f"| {r['in_flight_mean']:.0f} / {r['engine_most_in_flight']} | {r['daemon_cpu_s']:.1f} "
            f"| {1e3 * r['daemon_cpu_s'] / max(1, items):.2f} | {r['estimated_s'] * 1e3:.3f} ms "
            f"| {r['estimated_s'] / base['estimated_s']:.3f} |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(table + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
