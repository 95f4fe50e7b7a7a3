"""Does one Apache process run Python on several cores at once?

Starts Apache (event MPM, one process, --threads threads) with pyhost and a
CPU-bound app (bench/apps/cpu.py) and drives it with wrk, in interleaved
rounds, under these GIL modes:

  shared   two application groups sharing the process-wide GIL (the default)
  owngil   WSGIPerInterpreterGIL On: each group has its own GIL (3.12+)
  ft       WSGIFreeThreading On: free-threaded build, GIL off (3.13t+)
  ftgil    free-threaded build with WSGIFreeThreading Off (GIL on)

For shared and owngil it compares the same total load (--connections)
sent to one group against that load split between two groups; for ft and
ftgil, one connection against --connections connections to one group.
The ratio (parallel req/s over serial req/s) is ~1 when one GIL serializes
everything and approaches the number of cores (2 here) when it does not.

    /opt/pyhost/venv-312/bin/python bench/parallel.py              # shared,owngil
    /opt/pyhost/pythons/3.14t-venv/bin/python bench/parallel.py --modes ft,ftgil

pyhost is the module built into the venv running this script; the venv is
the Python home. Modes the module's Python cannot run are skipped with a
note.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

import pyhost

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (descendants)
from pyhost import apache

HERE = os.path.dirname(os.path.abspath(__file__))
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

MODES = {
    # name: (directives, can run?, why not)
    "shared": ("WSGIPerInterpreterGIL Off", True, ""),
    "owngil": ("WSGIPerInterpreterGIL On", sys.version_info >= (3, 12),
               "needs Python 3.12+"),
    "ft": ("WSGIFreeThreading On", FREE_THREADED, "needs a free-threaded Python"),
    "ftgil": ("WSGIFreeThreading Off", FREE_THREADED, "needs a free-threaded Python"),
}


def log(msg):
    sys.stderr.write("[parallel] %s\n" % msg)
    sys.stderr.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Server:
    def __init__(self, workdir, mode, threads):
        self.root = os.path.join(workdir, mode)
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        self.port = free_port()
        self.log = os.path.join(self.root, "error.log")
        httpd = apache.find_httpd()
        moddir = apache.find_modules_dir()
        compiled = apache.compiled_in_modules(httpd)
        app = os.path.join(workdir, "cpu.py")
        lines = ["LoadModule %s_module %s/mod_%s.so" % (m, moddir, m)
                 for m in ("mpm_event", "unixd", "authz_core", "log_config")
                 if m not in compiled]
        lines += ["LoadModule pyhost_module %s" % pyhost.module_location()]
        if os.geteuid() == 0:
            lines += ["User www-data", "Group www-data"]
        lines += [
            "ServerRoot %s" % self.root, "ServerName 127.0.0.1",
            "Listen 127.0.0.1:%d" % self.port,
            "PidFile %s/httpd.pid" % self.root, "DefaultRuntimeDir %s" % self.root,
            "Mutex file:%s default" % self.root,
            "ErrorLog %s" % self.log, "LogLevel info",
            "StartServers 1", "ServerLimit 1",
            "ThreadsPerChild %d" % threads, "ThreadLimit %d" % threads,
            "MaxRequestWorkers %d" % threads,
            "MinSpareThreads 1", "MaxSpareThreads %d" % threads,
            "MaxConnectionsPerChild 0", "KeepAlive On", "MaxKeepAliveRequests 0",
            "<Directory %s>" % workdir, "Require all granted", "</Directory>",
            "WSGIPythonHome %s" % sys.prefix,
            MODES[mode][0],
            "WSGIScriptAlias /a %s application-group=alpha" % app,
            "WSGIScriptAlias /b %s application-group=beta" % app,
            "WSGIScriptAlias /g %s application-group=%%{GLOBAL}" % app,
        ]
        self.conf = os.path.join(self.root, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.argv = [httpd, "-f", self.conf, "-DFOREGROUND"]
        self.proc = None

    def start(self):
        with open(self.log + ".out", "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        if not wait_port(self.port, self.proc):
            self.stop()
            raise RuntimeError("apache did not start:\n%s" % open(
                self.log + ".out", errors="replace").read()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wrk(port, path, connections, duration, out):
    cmd = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration,
           "--timeout", "20s", "http://127.0.0.1:%d%s" % (port, path)]
    text = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=duration + 60).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out.append((float(m.group(1)) if m else 0.0, int(bad.group(1)) if bad else 0))


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, ticks
    return total / os.sysconf("SC_CLK_TCK")


def load(port, parts, duration, pids=(), cpu=None):
    """Runs one wrk per (path, connections) at once; total req/s. With
    pids, appends to cpu the cores those processes kept busy meanwhile."""
    results = []
    c0, t0 = cpu_seconds(pids), time.monotonic()
    threads = [threading.Thread(target=wrk, args=(port, p, c, duration, results))
               for p, c in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if cpu is not None:
        cpu.append((cpu_seconds(pids) - c0) / (time.monotonic() - t0))
    if any(bad for _, bad in results):
        raise RuntimeError("non-2xx responses: %r" % results)
    return sum(rps for rps, _ in results)


def scenarios(mode, connections):
    half = max(1, connections // 2)
    if mode in ("shared", "owngil"):
        return (("one group", [("/a", 2 * half)]),
                ("two groups", [("/a", half), ("/b", half)]))
    return (("1 connection", [("/g", 1)]),
            ("%d connections" % connections, [("/g", connections)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="shared,owngil,ft,ftgil")
    ap.add_argument("--threads", type=int, default=4, help="Apache threads (1 process)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("parallel: wrk not found (scripts/install-deps.sh installs it)")

    workdir = tempfile.mkdtemp(prefix="pyhost-parallel-", dir="/tmp")
    os.chmod(workdir, 0o755)
    shutil.copy(os.path.join(HERE, "apps", "cpu.py"), os.path.join(workdir, "cpu.py"))
    os.chmod(os.path.join(workdir, "cpu.py"), 0o644)
    servers = {}
    load0 = os.getloadavg()[0]
    try:
        for mode in args.modes.split(","):
            _, ok, why = MODES[mode]
            if not ok:
                log("skip %s: %s (this is Python %s%s)" % (
                    mode, why, sysconfig.get_python_version(),
                    "t" if FREE_THREADED else ""))
                continue
            srv = Server(workdir, mode, args.threads)
            srv.start()
            for path in ("/a", "/b", "/g"):  # create the groups, load the app
                load(srv.port, [(path, 1)], 1)
            servers[mode] = srv
        # Interleaved: round 1 of every mode and scenario, then round 2...
        rps, cores = {}, {}
        for rnd in range(args.rounds):
            for mode, srv in servers.items():
                for name, parts in scenarios(mode, args.connections):
                    busy = cores.setdefault((mode, name), [])
                    r = load(srv.port, parts, args.duration,
                             bench.descendants(srv.proc.pid), busy)
                    log("round %d %s %s: %.1f req/s, %.2f cores" % (
                        rnd + 1, mode, name, r, busy[-1]))
                    rps.setdefault((mode, name), []).append(r)
        print("Python %s%s, %d cores (load average before: %.1f), Apache event "
              "1 process x %d threads, %d connections, %d x %d s rounds "
              "(median req/s; cores: CPU time of the Apache child / wall time)" % (
                  sysconfig.get_python_version(), "t" if FREE_THREADED else "",
                  os.cpu_count(), load0, args.threads, args.connections, args.rounds,
                  args.duration))
        for mode in servers:
            (n1, _), (n2, _) = scenarios(mode, args.connections)
            a = statistics.median(rps[(mode, n1)])
            b = statistics.median(rps[(mode, n2)])
            print("  %-7s %-14s %7.1f req/s %4.2f cores   %-14s %7.1f req/s "
                  "%4.2f cores   ratio %.2fx" % (
                      mode, n1, a, statistics.median(cores[(mode, n1)]),
                      n2, b, statistics.median(cores[(mode, n2)]),
                      b / a if a else float("nan")))
    finally:
        for srv in servers.values():
            srv.stop()
        if args.keep:
            log("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
