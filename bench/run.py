"""Side-by-side benchmarks: every setup is a real Apache on 127.0.0.1, driven
by wrk in interleaved rounds (A B C A B C ...) so that machine noise hits all
of them alike, and reported as a ratio to a C content handler measured in the
same run (the ceiling for anything that runs inside Apache).

    python bench/run.py                      # default setups, 3 rounds of 5 s
    python bench/run.py --smoke              # a few seconds, for CI
    python bench/run.py --setups c,pyhost,mod_wsgi --rounds 5 --duration 10

Peers (mod_wsgi, gunicorn) come from a venv of the same Python; see --peers.
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
import tempfile
import time

import pyhost
from pyhost import apache

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_PEERS = "/opt/pyhost/peers"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def build_c_handler(workdir):
    """Compiles mod_bench_hello.c with apxs into workdir; returns the .so."""
    src = os.path.join(workdir, "mod_bench_hello.c")
    shutil.copy(os.path.join(HERE, "mod_bench_hello.c"), src)
    subprocess.run([apache.find_apxs() or "apxs", "-c", src], cwd=workdir,
                   check=True, capture_output=True)
    return os.path.join(workdir, ".libs", "mod_bench_hello.so")


class Setup:
    """One Apache configured for one way of answering the workload."""

    def __init__(self, name, workdir, modules_dir, body_lines, load_lines):
        self.name = name
        self.root = os.path.join(workdir, name)
        self.port = free_port()
        self.proc = None
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        user = ["User www-data", "Group www-data"] if os.geteuid() == 0 else []
        compiled = apache.compiled_in_modules(apache.find_httpd())
        loads = [
            "LoadModule %s_module %s/mod_%s.so" % (m, modules_dir, m)
            for m in ("mpm_event", "unixd", "authz_core", "log_config", "mime")
            if m not in compiled
        ]
        self.conf = os.path.join(self.root, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(loads + load_lines + user + [
                "ServerRoot %s" % self.root,
                "ServerName 127.0.0.1",
                "Listen 127.0.0.1:%d" % self.port,
                "PidFile %s/httpd.pid" % self.root,
                "DefaultRuntimeDir %s" % self.root,
                "Mutex file:%s default" % self.root,
                "ErrorLog %s/error.log" % self.root,
                "LogLevel warn",
                "TypesConfig /etc/mime.types",
                "StartServers 2", "ServerLimit 2", "ThreadsPerChild 15",
                "ThreadLimit 15", "MaxRequestWorkers 30",
                "MinSpareThreads 1", "MaxSpareThreads 30",
                "KeepAlive On", "MaxKeepAliveRequests 0",
                "<Directory %s>" % workdir, "Require all granted",
                "</Directory>",
            ] + body_lines) + "\n")

    def start(self):
        self.proc = subprocess.Popen(
            [apache.find_httpd(), "-f", self.conf, "-DFOREGROUND"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not wait_port(self.port, self.proc):
            self.stop()
            log = os.path.join(self.root, "error.log")
            tail = open(log).read()[-2000:] if os.path.exists(log) else ""
            raise RuntimeError("%s did not start:\n%s" % (self.name, tail))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_setups(names, workdir, peers):
    modules_dir = apache.find_modules_dir()
    app = os.path.join(workdir, "apps", "hello.py")
    made = []
    for name in names:
        if name == "c":
            so = build_c_handler(workdir)
            made.append(Setup(name, workdir, modules_dir,
                              ["<Location /hello>", "SetHandler bench-hello",
                               "</Location>"],
                              ["LoadModule bench_hello_module %s" % so]))
        elif name == "pyhost":
            made.append(Setup(name, workdir, modules_dir,
                              ["WSGIPythonHome %s" % sys.prefix,
                               "WSGIScriptAlias /hello %s" % app],
                              ["LoadModule pyhost_module %s"
                               % pyhost.module_location()]))
        elif name == "mod_wsgi":
            express = os.path.join(peers, "bin", "mod_wsgi-express")
            so = subprocess.run([express, "module-location"], check=True,
                                capture_output=True, text=True).stdout.strip()
            made.append(Setup(name, workdir, modules_dir,
                              ["WSGIPythonHome %s" % peers,
                               "WSGIApplicationGroup %{GLOBAL}",
                               "WSGIScriptAlias /hello %s" % app],
                              ["LoadModule wsgi_module %s" % so]))
        else:
            raise SystemExit("unknown setup %r" % name)
    return made


def wrk(port, duration, connections, threads):
    out = subprocess.run(
        ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration,
         "--latency", "http://127.0.0.1:%d/hello" % port],
        check=True, capture_output=True, text=True,
        timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = float(m.group(1)) * scale[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError("wrk saw %s error responses" % errors.group(1))
    return rps, p99


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default="c,pyhost,mod_wsgi")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--peers", default=DEFAULT_PEERS,
                    help="venv with mod-wsgi built for the same Python")
    ap.add_argument("--smoke", action="store_true",
                    help="one short round: checks that every setup runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.duration = 1, 1
    names = [n for n in args.setups.split(",") if n]
    if "mod_wsgi" in names and not os.path.exists(
            os.path.join(args.peers, "bin", "mod_wsgi-express")):
        print("bench: no mod_wsgi in %s; skipping it" % args.peers)
        names.remove("mod_wsgi")

    workdir = tempfile.mkdtemp(prefix="pyhost-bench-")
    os.chmod(workdir, 0o755)
    shutil.copytree(os.path.join(HERE, "apps"), os.path.join(workdir, "apps"))
    subprocess.run(["chmod", "-R", "a+rX", workdir], check=True)
    setups = make_setups(names, workdir, args.peers)
    results = {s.name: [] for s in setups}
    try:
        for s in setups:
            s.start()
            wrk(s.port, 1, args.connections, args.threads)  # warm-up
        for _ in range(args.rounds):
            for s in setups:
                results[s.name].append(
                    wrk(s.port, args.duration, args.connections, args.threads))
    finally:
        for s in setups:
            s.stop()
    shutil.rmtree(workdir, ignore_errors=True)

    ceiling = statistics.median(r for r, _ in results["c"]) if "c" in results else None
    print("workload hello (12 bytes), keep-alive, wrk -t%d -c%d, %d x %ds, "
          "event MPM 2x15" % (args.threads, args.connections, args.rounds,
                              args.duration))
    print("%-10s %12s %10s %10s" % ("setup", "req/s (med)", "p99 ms", "vs C"))
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        ratio = "%.2f" % (rps / ceiling) if ceiling else "-"
        print("%-10s %12.0f %10.2f %10s" % (name, rps, p99, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
