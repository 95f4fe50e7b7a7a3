"""Server CPU time per request: runs setups of run.py, drives each with wrk
(keep-alive hello by default) in interleaved rounds, and reports req/s,
the serving processes' CPU time (user + system, from /proc) per request,
and their context switches per request. Where req/s ties because the
kernel and the client dominate a request, CPU per request still shows
what the server itself spends.

    /opt/pyhost/venv/bin/python bench/cpu.py --setups c,pyhost,mod_wsgi
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def sample(pids):
    """(CPU ticks, voluntary, involuntary context switches) summed over
    every thread of pids."""
    cpu = vcs = ivcs = 0
    for pid in pids:
        for task in glob.glob("/proc/%d/task/*" % pid):
            try:
                with open(task + "/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu += int(fields[11]) + int(fields[12])
                with open(task + "/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vcs += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            ivcs += int(line.split()[1])
            except (OSError, IndexError, ValueError):
                pass  # a thread that ended between listing and reading
    return cpu, vcs, ivcs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default="c,pyhost,mod_wsgi")
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--peers", default=bench.DEFAULT_PEERS)
    args = ap.parse_args(argv)
    workdir = bench.make_workdir("pyhost-cpu-")
    b = bench.Bench(workdir, args.peers)
    setups, rows = [], []
    try:
        for name in [n for n in args.setups.split(",") if n]:
            s = b.make(name)
            s.start()
            setups.append(s)
            bench.warm_up(s.port, args.path)
        for _ in range(args.rounds):
            for s in setups:
                pids = s.workers()
                before = sample(pids)
                out = subprocess.run(
                    ["wrk", "-t2", "-c16", "-d%ds" % args.duration,
                     "http://127.0.0.1:%d%s" % (s.port, args.path)],
                    capture_output=True, text=True,
                    timeout=args.duration + 60).stdout
                after = sample(pids)
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                rows.append((s.name, rps,
                             (after[0] - before[0]) / TICK / max(n, 1) * 1e6,
                             (after[1] - before[1]) / max(n, 1),
                             (after[2] - before[2]) / max(n, 1)))
    finally:
        for s in setups:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("%-16s %9s %14s %10s %10s" % ("setup", "req/s", "CPU us/req",
                                        "vcs/req", "ivcs/req"))
    for name, rps, us, v, iv in sorted(rows, key=lambda r: r[0]):
        print("%-16s %9.0f %14.1f %10.2f %10.2f" % (name, rps, us, v, iv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
