"""Side-by-side benchmarks: every setup is started on 127.0.0.1, driven by
wrk in interleaved rounds (A B C A B C ...) so that machine noise hits all
of them alike, and reported as a ratio to a C content handler measured in
the same run (the ceiling for anything that runs inside Apache).

    /opt/pyhost/venv/bin/python bench/run.py            # everything, 3 rounds x 3 s
    /opt/pyhost/venv/bin/python bench/run.py --smoke    # ~3 min, for CI
    /opt/pyhost/venv/bin/python bench/run.py --asgi     # the ASGI table
    ... bench/run.py --setups c,pyhost,mod_wsgi --workloads hello,flask \\
                     --modes keepalive --rounds 5 --duration 10

pyhost is the module built into the venv running this script; every Python
setup runs the same app file (bench/apps/app.py) with the same Python home
(--peers, a venv of the same base Python holding mod-wsgi, gunicorn, uwsgi
and flask; scripts/install-bench-peers.sh makes it). Setups whose pieces
are missing are skipped with a note, never silently.

The ASGI setups (pyhost_asgi, uvicorn, granian, hypercorn, uvicorn_proxy)
serve bench/apps/asgi_app.py the same way, with the ASGI peers from the
same venv; the WebSocket echo is driven by bench/ws_echo.py instead of wrk.
"""

import argparse
import json
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

# Same shape for every server: 2 processes x 15 threads; gunicorn runs
# gthread 2 workers x 8 threads, the comparison issue #4 (daemon mode) sets.
PROCESSES, THREADS = 2, 15
GUNICORN_THREADS = 8
# pyhost's daemon process group, as issue #4's comparison writes it.
DAEMON_GROUP = "pyhost-bench"

WS = "ws_echo.py"  # the client for ws_echo, in place of a wrk script

# name -> (URL path on the Python setups, wrk lua script or None, what it is)
WORKLOADS = {
    "hello": ("/hello", None, "12-byte body, known length"),
    "flask": ("/flask", None, "Flask 'Hello world!' route"),
    "64k": ("/64k", None, "64 KB body, known length"),
    "file": ("/file", None, "5 MB file via wsgi.file_wrapper"),
    "post": ("/echo", "post.lua", "1 MB POST body echoed back"),
    "stream": ("/stream", None, "100 x 1 KB chunks, no length (streamed)"),
    # ASGI (bench/apps/asgi_app.py); ws_echo is driven by bench/ws_echo.py,
    # not wrk: its figure is messages/s, one in flight per connection.
    "asgi_hello": ("/hello", None, "raw ASGI, 12-byte body, known length"),
    "fastapi": ("/fastapi", None, "FastAPI GET, pydantic response model"),
    "asgi_stream": ("/stream", None,
                    "1 MB as 16 x 64 KiB more_body messages, no length"),
    "ws_echo": ("/ws", WS, "WebSocket echo, 12-byte text messages/s"),
}
MODES = {"keepalive": [], "close": ["-H", "Connection: close"]}
ASGI_WORKLOADS = ("asgi_hello", "fastapi", "asgi_stream", "ws_echo")
PY_WORKLOADS = tuple(w for w in WORKLOADS if w not in ASGI_WORKLOADS)

ALL_SETUPS = ("c", "static", "pyhost", "pyhost_daemon", "mod_wsgi",
              "mod_wsgi_daemon", "gunicorn", "gunicorn_proxy", "uwsgi")
# ASGI (issue 13): pyhost embedded (ASGIScriptAlias) against uvicorn (2
# workers, uvloop + httptools), granian (2 workers, ASGI interface),
# hypercorn (2 workers, uvloop) and Apache -> mod_proxy_http -> uvicorn;
# the C handler is their ceiling for hello.
ASGI_SETUPS = ("pyhost_asgi", "uvicorn", "granian", "hypercorn",
               "uvicorn_proxy")
ALL_SETUPS += ASGI_SETUPS
# Asked for by name only: pyhost with its metrics off, for issue 17's
# overhead figure (--setups c,pyhost,pyhost_nometrics --workloads hello).
EXTRA_SETUPS = ("pyhost_nometrics",)
# --asgi: the ASGI table alone
ASGI_PRESET = {"setups": ("c",) + ASGI_SETUPS, "workloads": ASGI_WORKLOADS,
               "modes": ("keepalive",)}


T0 = time.monotonic()


def log(msg):
    """Progress on stderr, so a slow or stuck step is visible."""
    sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class Skip(Exception):
    """A setup that cannot run here; the message says why."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30.0):
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


def warm_up(port, path, timeout=30.0):
    """One request, retried until it succeeds: Apache answers before a
    daemon process has started Python and loaded the app."""
    import http.client
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def descendants(pid):
    """pid's live descendants (not pid itself), from /proc. Also
    tests/test_daemon.py's way of finding daemon processes."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def is_helper(pid):
    """multiprocessing's resource tracker, which uvicorn's and hypercorn's
    supervisors start beside their workers: it serves nothing, so its RSS
    is not a worker's."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"multiprocessing.resource_tracker" in f.read()
    except OSError:
        return False


def proc_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop_proc(proc, sig=signal.SIGTERM, timeout=20):
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- setups -------------------------------------------------------------


class Server:
    """One process we start (Apache, gunicorn or uWSGI) and its children."""

    def __init__(self, name, argv, port, log, cwd=None):
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.cwd = cwd
        self.proc = None

    def start(self):
        log("start %s" % self.name)
        with open(self.log + ".out", "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         cwd=self.cwd)
        if not wait_port(self.port, self.proc):
            self.stop()
            tail = ""
            for path in (self.log, self.log + ".out"):
                if os.path.exists(path):
                    tail += open(path, errors="replace").read()[-2000:]
            raise RuntimeError("%s did not start:\n%s" % (self.name, tail))

    def workers(self):
        """The processes that serve requests: the children if there are
        any (Apache, gunicorn, uWSGI masters only supervise)."""
        kids = [k for k in (descendants(self.proc.pid) if self.proc else [])
                if not is_helper(k)]
        return kids or ([self.proc.pid] if self.proc else [])

    def stop(self):
        # Apache and gunicorn stop on SIGTERM; uWSGI wants SIGINT.
        log("stop %s" % self.name)
        stop_proc(self.proc, signal.SIGINT if "uwsgi" in self.argv[0]
                  else signal.SIGTERM)


class Setup:
    """A way of answering the workloads: one or more Servers; `port` is the
    one wrk talks to."""

    def __init__(self, name, servers, workloads, note=""):
        self.name, self.servers, self.workloads = name, servers, workloads
        self.port = servers[0].port
        self.note = note

    def start(self):
        for s in reversed(self.servers):  # backends first
            s.start()

    def stop(self):
        for s in self.servers:
            s.stop()

    def workers(self):
        return [pid for s in self.servers for pid in s.workers()]


class Bench:
    def __init__(self, workdir, peers):
        self.workdir, self.peers = workdir, peers
        self.apps = os.path.join(workdir, "apps")
        self.app = os.path.join(self.apps, "app.py")
        self.asgi_app = os.path.join(self.apps, "asgi_app.py")
        self.httpd = apache.find_httpd()
        self.modules_dir = apache.find_modules_dir()
        self.compiled = apache.compiled_in_modules(self.httpd)

    # -- Apache ------------------------------------------------------------

    def apache(self, name, body, loads=(), modules=()):
        root = os.path.join(self.workdir, name)
        os.makedirs(root, exist_ok=True)
        os.chmod(root, 0o755)
        port = free_port()
        user = ["User www-data", "Group www-data"] if os.geteuid() == 0 else []
        mods = ["LoadModule %s_module %s/mod_%s.so" % (m, self.modules_dir, m)
                for m in ("mpm_event", "unixd", "authz_core", "log_config",
                          "mime") + tuple(modules)
                if m not in self.compiled]
        conf = os.path.join(root, "httpd.conf")
        with open(conf, "w") as f:
            f.write("\n".join(mods + list(loads) + user + [
                "ServerRoot %s" % root,
                "ServerName 127.0.0.1",
                "Listen 127.0.0.1:%d" % port,
                "PidFile %s/httpd.pid" % root,
                "DefaultRuntimeDir %s" % root,
                "Mutex file:%s default" % root,
                "ErrorLog %s/error.log" % root,
                "LogLevel warn",
                "TypesConfig /etc/mime.types",
                "StartServers %d" % PROCESSES, "ServerLimit %d" % PROCESSES,
                "ThreadsPerChild %d" % THREADS, "ThreadLimit %d" % THREADS,
                "MaxRequestWorkers %d" % (PROCESSES * THREADS),
                "MinSpareThreads 1",
                "MaxSpareThreads %d" % (PROCESSES * THREADS),
                "MaxConnectionsPerChild 0",
                "KeepAlive On", "MaxKeepAliveRequests 0",
                "EnableSendfile On",
                "<Directory />", "AllowOverride None", "</Directory>",
                "<Directory %s>" % self.workdir, "Require all granted",
                "</Directory>",
            ] + list(body)) + "\n")
        return Server(name, [self.httpd, "-f", conf, "-DFOREGROUND"], port,
                      os.path.join(root, "error.log")), conf

    def config_test(self, conf):
        res = subprocess.run([self.httpd, "-t", "-f", conf],
                             capture_output=True, text=True, timeout=60)
        return res.returncode == 0, (res.stdout + res.stderr).strip()

    def mod_wsgi_so(self):
        express = os.path.join(self.peers, "bin", "mod_wsgi-express")
        if not os.path.exists(express):
            raise Skip("no mod_wsgi-express in %s (run "
                       "scripts/install-bench-peers.sh)" % self.peers)
        return subprocess.run([express, "module-location"], check=True,
                              capture_output=True, text=True,
                              timeout=60).stdout.strip()

    def peer_bin(self, name):
        path = os.path.join(self.peers, "bin", name)
        if not os.path.exists(path):
            raise Skip("no %s in %s (run scripts/install-bench-peers.sh)"
                       % (name, self.peers))
        return path

    # -- the setups ----------------------------------------------------------

    def make(self, name):
        return getattr(self, "setup_" + name)(name)

    def setup_c(self, name):
        src = os.path.join(self.workdir, "mod_bench_hello.c")
        shutil.copy(os.path.join(HERE, "mod_bench_hello.c"), src)
        subprocess.run([apache.find_apxs() or "apxs", "-c", src],
                       cwd=self.workdir, check=True, capture_output=True,
                       timeout=120)
        so = os.path.join(self.workdir, ".libs", "mod_bench_hello.so")
        # /hello maps to a file that exists, as a WSGI script does for the
        # Python setups: Apache's directory walk then stats one path. (A
        # URL under a docroot that does not exist made it stat each
        # parent in turn, 5 calls per request, which held the C ceiling
        # down.)
        srv, _ = self.apache(name, [
            "Alias /hello %s/hello.txt" % self.apps,
            "<Location /hello>", "SetHandler bench-hello", "</Location>",
        ], ["LoadModule bench_hello_module %s" % so], modules=("alias",))
        # asgi_hello is the same URL: the ceiling in the ASGI table
        return Setup(name, [srv], ("hello", "asgi_hello"))

    def setup_static(self, name):
        srv, _ = self.apache(name, [
            "Alias /hello %s/hello.txt" % self.apps,
            "Alias /file %s/5mb.bin" % self.apps,
        ], modules=("alias",))
        return Setup(name, [srv], ("hello", "file"))

    def python_lines(self):
        return ["WSGIPythonHome %s" % self.peers,
                "WSGIApplicationGroup %{GLOBAL}"]

    def setup_pyhost(self, name):
        srv, _ = self.apache(name, self.python_lines() + [
            "WSGIScriptAlias / %s" % self.app,
        ], ["LoadModule pyhost_module %s" % pyhost.module_location()])
        return Setup(name, [srv], PY_WORKLOADS)

    def setup_pyhost_nometrics(self, name):
        srv, _ = self.apache(name, self.python_lines() + [
            "PyhostMetrics Off",
            "WSGIScriptAlias / %s" % self.app,
        ], ["LoadModule pyhost_module %s" % pyhost.module_location()])
        return Setup(name, [srv], ("hello",))

    def setup_pyhost_daemon(self, name):
        # The same lines as mod_wsgi's daemon setup. Whether the module
        # takes WSGIDaemonProcess is asked of Apache (a config test of
        # just the daemon lines), not assumed: while it is rejected, the
        # setup is skipped with Apache's own message.
        daemon = [
            "WSGIDaemonProcess %s processes=%d threads=%d python-home=%s"
            % (DAEMON_GROUP, PROCESSES, THREADS, self.peers),
            "WSGIProcessGroup %s" % DAEMON_GROUP,
        ]
        load = ["LoadModule pyhost_module %s" % pyhost.module_location()]
        _, probe = self.apache(name + "_probe", self.python_lines() + daemon,
                               load)
        ok, out = self.config_test(probe)
        if not ok:
            raise Skip("pyhost rejects WSGIDaemonProcess (no daemon mode in "
                       "this build): %s" % out.splitlines()[-1][:120])
        srv, conf = self.apache(name, self.python_lines() + daemon + [
            "WSGIScriptAlias / %s" % self.app,
        ], load)
        ok, out = self.config_test(conf)
        if not ok:
            raise Skip("pyhost daemon setup fails Apache's config test: %s"
                       % out.splitlines()[-1][:120])
        return Setup(name, [srv], PY_WORKLOADS,
                     note="Apache 2x15 threads relay to 2x15 daemon threads "
                          "(group %s)" % DAEMON_GROUP)

    def setup_mod_wsgi(self, name):
        so = self.mod_wsgi_so()
        srv, _ = self.apache(name, self.python_lines() + [
            "WSGIEnableSendfile On",
            "WSGIScriptAlias / %s" % self.app,
        ], ["LoadModule wsgi_module %s" % so])
        return Setup(name, [srv], PY_WORKLOADS)

    def setup_mod_wsgi_daemon(self, name):
        so = self.mod_wsgi_so()
        root = os.path.join(self.workdir, name)
        srv, _ = self.apache(name, self.python_lines() + [
            "WSGIEnableSendfile On",
            "WSGISocketPrefix %s/wsgi" % root,
            "WSGIDaemonProcess bench processes=%d threads=%d python-home=%s"
            % (PROCESSES, THREADS, self.peers),
            "WSGIProcessGroup bench",
            "WSGIScriptAlias / %s" % self.app,
        ], ["LoadModule wsgi_module %s" % so])
        return Setup(name, [srv], PY_WORKLOADS,
                     note="Apache 2x15 threads relay to 2x15 daemon threads")

    def gunicorn(self, name):
        port = free_port()
        log = os.path.join(self.workdir, name + ".log")
        return Server(name, [
            self.peer_bin("gunicorn"), "--chdir", self.apps,
            "--workers", str(PROCESSES), "--threads", str(GUNICORN_THREADS),
            "--worker-class", "gthread", "--bind", "127.0.0.1:%d" % port,
            "--keep-alive", "30", "--error-logfile", log, "app:application",
        ], port, log)

    def setup_gunicorn(self, name):
        return Setup(name, [self.gunicorn(name)], PY_WORKLOADS,
                     note="gthread worker, %d x %d threads"
                     % (PROCESSES, GUNICORN_THREADS))

    def setup_gunicorn_proxy(self, name):
        backend = self.gunicorn(name + "_backend")
        srv, _ = self.apache(name, [
            "ProxyPass / http://127.0.0.1:%d/ keepalive=On" % backend.port,
            "ProxyPassReverse / http://127.0.0.1:%d/" % backend.port,
        ], modules=("proxy", "proxy_http"))
        return Setup(name, [srv, backend], PY_WORKLOADS,
                     note="Apache mod_proxy_http -> gunicorn gthread %dx%d"
                     % (PROCESSES, GUNICORN_THREADS))

    def setup_uwsgi(self, name):
        port = free_port()
        log = os.path.join(self.workdir, name + ".log")
        srv = Server(name, [
            self.peer_bin("uwsgi"), "--http-socket", "127.0.0.1:%d" % port,
            "--http-keepalive", "--wsgi-file", self.app,
            "--master", "--processes", str(PROCESSES),
            "--threads", str(THREADS), "--disable-logging",
            "--need-app", "--die-on-term", "--logto", log,
            "--home", self.peers,
        ], port, log)
        return Setup(name, [srv], PY_WORKLOADS,
                     note="--http-socket, 2 processes x 15 threads")

    # -- ASGI ------------------------------------------------------------------

    def setup_pyhost_asgi(self, name):
        # ASGIEventLoop auto: uvloop, which the peers home has, as uvicorn
        # runs on; Apache's 2 x 15 threads hand requests to each child's loop.
        # The bridge (pyhost._asgi) must come from the same build as the
        # module: the peers home has no pyhost, so a directory holding only
        # a link to this pyhost package goes on WSGIPythonPath (the whole
        # venv's site-packages would also shadow-add its other packages).
        pylib = os.path.join(self.workdir, "pyhost-pkg")
        if not os.path.isdir(pylib):
            os.makedirs(pylib)
            os.symlink(os.path.dirname(os.path.abspath(pyhost.__file__)),
                       os.path.join(pylib, "pyhost"))
            os.chmod(pylib, 0o755)
        srv, _ = self.apache(name, self.python_lines() + [
            "WSGIPythonPath %s" % pylib,
            "ASGIScriptAlias / %s" % self.asgi_app,
        ], ["LoadModule pyhost_module %s" % pyhost.module_location()])
        return Setup(name, [srv], ASGI_WORKLOADS,
                     note="embedded, ASGIScriptAlias, event loop auto "
                          "(uvloop in the peers home)")

    def uvicorn(self, name):
        port = free_port()
        log = os.path.join(self.workdir, name + ".log")
        return Server(name, [
            self.peer_bin("uvicorn"), "--app-dir", self.apps,
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(PROCESSES), "--loop", "uvloop",
            "--http", "httptools", "--ws", "websockets",
            "--log-level", "warning", "--no-access-log", "asgi_app:app",
        ], port, log)

    def setup_uvicorn(self, name):
        return Setup(name, [self.uvicorn(name)], ASGI_WORKLOADS,
                     note="%d workers, uvloop + httptools, websockets"
                     % PROCESSES)

    def setup_granian(self, name):
        port = free_port()
        log = os.path.join(self.workdir, name + ".log")
        srv = Server(name, [
            self.peer_bin("granian"), "--interface", "asgi",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(PROCESSES), "--working-dir", self.apps,
            "--log-level", "warning", "--no-access-log", "asgi_app:app",
        ], port, log)
        return Setup(name, [srv], ASGI_WORKLOADS,
                     note="%d workers, ASGI interface, loop auto" % PROCESSES)

    def setup_hypercorn(self, name):
        port = free_port()
        log = os.path.join(self.workdir, name + ".log")
        srv = Server(name, [
            self.peer_bin("hypercorn"), "--workers", str(PROCESSES),
            "--worker-class", "uvloop", "--bind", "127.0.0.1:%d" % port,
            "--log-level", "warning", "asgi_app:app",
        ], port, log, cwd=self.apps)
        return Setup(name, [srv], ASGI_WORKLOADS,
                     note="%d workers, uvloop worker class" % PROCESSES)

    def setup_uvicorn_proxy(self, name):
        backend = self.uvicorn(name + "_backend")
        # mod_proxy_http carries the WebSocket too (upgrade=websocket,
        # httpd >= 2.4.47), as mod_proxy_wstunnel would.
        srv, _ = self.apache(name, [
            "ProxyPass / http://127.0.0.1:%d/ keepalive=On upgrade=websocket"
            % backend.port,
            "ProxyPassReverse / http://127.0.0.1:%d/" % backend.port,
        ], modules=("proxy", "proxy_http"))
        return Setup(name, [srv, backend], ASGI_WORKLOADS,
                     note="Apache mod_proxy_http (upgrade=websocket) -> "
                          "uvicorn %d workers" % PROCESSES)


# ---- wrk ----------------------------------------------------------------


def ws_echo(port, path, duration, args):
    """One bench/ws_echo.py run (--connections over --threads client
    processes, as wrk's); rps is messages/s. Run with the peers' Python
    (uvloop there), so the client is the same for every setup."""
    py = os.path.join(args.peers, "bin", "python")
    if not os.path.exists(py):
        py = sys.executable
    cmd = [py, os.path.join(HERE, WS), "--port", str(port), "--path", path,
           "--connections", str(args.connections),
           "--processes", str(args.threads), "--duration", str(duration)]
    log("ws_echo :%d%s" % (port, path))
    res = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=duration + 120)
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        log("ws_echo failed: %s" % res.stderr[-2000:])
        return {"rps": 0.0, "p99_ms": float("nan"), "errors": 1,
                "requests": 0}
    if out["errors"]:
        log("ws_echo errors: %s" % out["why"])
    return {"rps": out["rps"], "errors": out["errors"],
            "p99_ms": out["p99_ms"] if out["p99_ms"] is not None
            else float("nan"), "requests": out["messages"]}


def wrk(port, path, script, mode, duration, args, extra=()):
    """One wrk run; returns a dict with rps, p99_ms and errors."""
    if script == WS:
        return ws_echo(port, path, duration, args)
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections,
           "-d%ds" % duration, "--latency", "--timeout", "10s"] + MODES[mode]
    if script:
        cmd += ["-s", os.path.join(HERE, script)]
    cmd += ["http://127.0.0.1:%d%s" % (port, path)] + list(extra)
    log("wrk %s %s :%d%s" % (mode, script or "", port, path))
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=duration + 60).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = float(m.group(1)) * scale[m.group(2)] if m else float("nan")
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        # A read error is how wrk counts a server closing after the
        # response on 'Connection: close'; only the others are failures.
        errors += int(m.group(1)) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"(\d+) requests in", out)
    total = int(m.group(1)) if m else 0
    return {"rps": rps, "p99_ms": p99, "errors": errors, "requests": total}


def leak_check(setup, requests, hello_rps, args, path="/hello"):
    """RSS of the serving processes before, halfway through and after about
    `requests` keep-alive hellos (wrk runs for a time, not a count: the
    duration comes from the hello rate measured in the rounds, and the exact
    count done is what the growth is divided by). The two halves tell a
    leak (the second grows as much as the first) from a heap still settling
    (the second grows less)."""
    rate = [hello_rps or 5000.0]
    seconds = lambda n: max(1, min(int(n / rate[0] * 1.1) + 1, 300))
    wrk(setup.port, path, None, "keepalive", seconds(requests / 10), args)
    rss = lambda: sum(proc_kb(p, "VmRSS") for p in setup.workers())

    def drive(n):
        done = 0
        # The rate here can be lower than in the rounds: top up until the
        # count is reached (at most 3 more runs).
        for _ in range(4):
            secs = seconds(n - done)
            res = wrk(setup.port, path, None, "keepalive", secs, args)
            done += res["requests"]
            if done >= n or not res["requests"]:
                break
            rate[0] = res["requests"] / float(secs)  # what it does here
        return done

    before = rss()
    first = drive(requests // 2)
    mid = rss()
    # the same count again (the first half can overshoot its time-based
    # estimate; the halves must be alike to be compared)
    second = drive(max(first, requests // 2))
    after = rss()
    done = first + second
    return {"requests": done, "rss_before_kb": before, "rss_mid_kb": mid,
            "rss_after_kb": after, "requests_first_half": first,
            "bytes_per_request": (after - before) * 1024.0 / max(done, 1),
            "bytes_per_request_second_half":
                (after - mid) * 1024.0 / max(second, 1)}


# ---- the run ------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups")
    ap.add_argument("--workloads")
    ap.add_argument("--modes")
    ap.add_argument("--asgi", action="store_true",
                    help="the ASGI table: setups %s, workloads %s, "
                         "keep-alive (any of the three given explicitly "
                         "wins)" % (",".join(ASGI_PRESET["setups"]),
                                    ",".join(ASGI_WORKLOADS)))
    ap.add_argument("--leak-setups",
                    help="setups the growth check runs on (default: every "
                         "Python setup that ran hello or asgi_hello)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=3, help="seconds per run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--leak-requests", type=int, default=200000,
                    help="hellos for the memory-growth check (0: skip)")
    ap.add_argument("--peers", default=DEFAULT_PEERS,
                    help="venv of the same Python with mod-wsgi, gunicorn, "
                         "uwsgi and flask")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--smoke", action="store_true",
                    help="one 1-second round, keep-alive only (plus hello "
                         "with close), small leak check: checks that every "
                         "setup runs")
    args = ap.parse_args(argv)
    defaults = ASGI_PRESET if args.asgi else {
        "setups": ALL_SETUPS, "workloads": tuple(WORKLOADS),
        "modes": ("keepalive", "close")}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, ",".join(v))
    if args.smoke:
        args.rounds, args.duration = 1, 1
        args.leak_requests = min(args.leak_requests, 2000)
    return args


def cells(setups, args):
    """(setup, workload, mode) in the order one round runs them."""
    workloads = [w for w in args.workloads.split(",") if w]
    modes = [m for m in args.modes.split(",") if m]
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit("unknown workload %r" % w)
    out = []
    for mode in modes:
        for w in workloads:
            if args.smoke and mode == "close" and w != "hello":
                continue
            if w == "ws_echo" and mode != "keepalive":
                continue  # one upgraded connection is all it has
            out.append([(s, w, mode) for s in setups if w in s.workloads])
    return out


def make_workdir(prefix, files=False):
    """A fresh directory holding a copy of bench/apps that Apache's User
    can read (the checkout may be under /root), with the static hello the
    static and C setups map /hello to; with files, also the 5 MB file."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    os.chmod(workdir, 0o755)
    apps = os.path.join(workdir, "apps")
    shutil.copytree(os.path.join(HERE, "apps"), apps)
    with open(os.path.join(apps, "hello.txt"), "wb") as f:
        f.write(b"Hello world!")
    if files:
        with open(os.path.join(apps, "5mb.bin"), "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024))
    subprocess.run(["chmod", "-R", "a+rX", workdir], check=True)
    return workdir


def run(args):
    names = [n for n in args.setups.split(",") if n]
    for n in names:
        if n not in ALL_SETUPS + EXTRA_SETUPS:
            raise SystemExit("unknown setup %r (have %s)"
                             % (n, ", ".join(ALL_SETUPS + EXTRA_SETUPS)))
    workdir = make_workdir("pyhost-bench-", files=True)

    bench = Bench(workdir, args.peers)
    setups, skipped = [], {}
    for n in names:
        try:
            setups.append(bench.make(n))
        except Skip as e:
            skipped[n] = str(e)
    results = {}  # (setup, workload, mode) -> [run dicts]
    rss, leaks = {}, {}
    started = []
    try:
        for s in setups:
            try:
                s.start()
            except RuntimeError as e:
                skipped[s.name] = "did not start: %s" % e
                continue
            started.append(s)
            warm_up(s.port, WORKLOADS[s.workloads[0]][0])
        plan = cells(started, args)
        if not args.smoke:  # warm-up: imports, caches, pools
            for group in plan:
                for s, w, mode in group:
                    if mode == "keepalive":
                        path, script, _ = WORKLOADS[w]
                        wrk(s.port, path, script, mode, 1, args)
        for _ in range(args.rounds):
            for group in plan:
                for s, w, mode in group:
                    path, script, _ = WORKLOADS[w]
                    results.setdefault((s.name, w, mode), []).append(
                        wrk(s.port, path, script, mode, args.duration, args))
        if args.leak_requests:
            only = args.leak_setups and args.leak_setups.split(",")
            for s in started:
                if s.name in ("c", "static") or (only and s.name not in only):
                    continue
                for w in ("hello", "asgi_hello"):
                    if w in s.workloads:
                        runs = results.get((s.name, w, "keepalive"), [])
                        rate = statistics.median([r["rps"] for r in runs]
                                                 or [0])
                        leaks[s.name] = leak_check(s, args.leak_requests,
                                                   rate, args,
                                                   WORKLOADS[w][0])
                        leaks[s.name]["workload"] = w
                        break
        for s in started:
            pids = s.workers()
            rss[s.name] = {"processes": len(pids),
                           "peak_kb_max": max([proc_kb(p, "VmHWM")
                                               for p in pids] or [0]),
                           "peak_kb_sum": sum(proc_kb(p, "VmHWM")
                                              for p in pids)}
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"setups": [s.name for s in started], "skipped": skipped,
            "notes": {s.name: s.note for s in setups if s.note},
            "results": results, "rss": rss, "leaks": leaks}


def summarize(report):
    table = {}
    for (name, w, mode), runs in report["results"].items():
        rps = [r["rps"] for r in runs]
        med = statistics.median(rps)
        table[(name, w, mode)] = {
            "rps": med,
            "runs": rps,  # one per round, in round order
            # how far apart the rounds were: (max - min) / median
            "spread": (max(rps) - min(rps)) / med if med else 0.0,
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            # requests (messages for ws_echo) done over all rounds
            "requests": sum(r["requests"] for r in runs),
        }
    return table


def ratio(table, a, b, w, mode, wb=None):
    """a's req/s over b's (b's workload wb, default w): the median of the
    per-round ratios. Round i of a and of b ran seconds apart, so each
    pair saw the same machine; the median of the pairs is steadier than
    the ratio of two medians taken from different rounds (on this 2-core
    machine a cell can move 10-15% between rounds)."""
    x, y = table.get((a, w, mode)), table.get((b, wb or w, mode))
    if not x or not y or not y["rps"]:
        return None
    if len(x["runs"]) == len(y["runs"]) and all(y["runs"]):
        return statistics.median(p / q for p, q in zip(x["runs"], y["runs"]))
    return x["rps"] / y["rps"]


def targets(table, report):
    """The issue's targets, as (what, value, goal, met)."""
    out = []

    def add(what, value, goal, higher=True):
        if value is None:
            out.append((what, None, goal, None))
        else:
            out.append((what, value, goal,
                        value >= goal if higher else value <= goal))

    ka = "keepalive"
    add("hello pyhost / C handler", ratio(table, "pyhost", "c", "hello", ka), 0.80)
    add("hello pyhost / mod_wsgi", ratio(table, "pyhost", "mod_wsgi", "hello", ka), 2.0)
    add("flask pyhost / mod_wsgi", ratio(table, "pyhost", "mod_wsgi", "flask", ka), 1.2)
    add("5 MB file pyhost / static", ratio(table, "pyhost", "static", "file", ka), 0.9)
    add("1 MB POST pyhost / mod_wsgi", ratio(table, "pyhost", "mod_wsgi", "post", ka), 1.0)
    rss = report["rss"]
    if "pyhost" in rss and "mod_wsgi" in rss and rss["mod_wsgi"]["peak_kb_max"]:
        add("peak RSS per child pyhost / mod_wsgi",
            rss["pyhost"]["peak_kb_max"] / rss["mod_wsgi"]["peak_kb_max"], 1.0,
            higher=False)
    leak = report["leaks"].get("pyhost")
    if leak:
        add("pyhost growth, bytes/request over %d" % leak["requests"],
            leak["bytes_per_request"], 0.5, higher=False)
    # issue #4 (daemon mode), when its setups ran
    # issue #13 (ASGI), when its setups ran
    if ("pyhost_asgi", "asgi_hello", ka) in table:
        add("#13 ASGI hello pyhost_asgi / C handler",
            ratio(table, "pyhost_asgi", "c", "asgi_hello", ka), 0.80)
        add("#13 ASGI hello pyhost_asgi / uvicorn_proxy",
            ratio(table, "pyhost_asgi", "uvicorn_proxy", "asgi_hello", ka),
            2.5)
    if ("pyhost_asgi", "fastapi", ka) in table:
        add("#13 FastAPI pyhost_asgi / uvicorn",
            ratio(table, "pyhost_asgi", "uvicorn", "fastapi", ka), 1.2)
        add("#13 FastAPI pyhost_asgi / granian",
            ratio(table, "pyhost_asgi", "granian", "fastapi", ka), 1.0)
    if ("pyhost_asgi", "ws_echo", ka) in table:
        add("#13 WebSocket echo pyhost_asgi / uvicorn",
            ratio(table, "pyhost_asgi", "uvicorn", "ws_echo", ka), 1.0)
    leak = report["leaks"].get("pyhost_asgi")
    if leak:
        add("#13 pyhost_asgi growth, bytes/request over %d"
            % leak["requests"], leak["bytes_per_request"], 0.5, higher=False)
    if ("pyhost_nometrics", "hello", ka) in table:
        add("#17 hello metrics on / off (pyhost / pyhost_nometrics)",
            ratio(table, "pyhost", "pyhost_nometrics", "hello", ka), 0.98)
    if ("pyhost_daemon", "hello", ka) in table:
        add("#4 hello pyhost_daemon / mod_wsgi_daemon",
            ratio(table, "pyhost_daemon", "mod_wsgi_daemon", "hello", ka), 2.0)
        add("#4 hello pyhost_daemon / gunicorn",
            ratio(table, "pyhost_daemon", "gunicorn", "hello", ka), 1.0)
    # issue 14: a daemon's file_wrapper passes its descriptor to Apache
    if ("pyhost_daemon", "file", ka) in table and ("static", "file", ka) in table:
        add("#14 5 MB file pyhost_daemon / static",
            ratio(table, "pyhost_daemon", "static", "file", ka), 0.9)
    if ("pyhost_daemon" in rss and "mod_wsgi_daemon" in rss
            and rss["mod_wsgi_daemon"]["peak_kb_max"]):
        add("#14 peak RSS per process pyhost_daemon / mod_wsgi_daemon",
            rss["pyhost_daemon"]["peak_kb_max"]
            / rss["mod_wsgi_daemon"]["peak_kb_max"], 1.0, higher=False)
    return out


def print_report(report, args):
    table = summarize(report)
    setups = report["setups"]
    print("pyhost bench: wrk -t%d -c%d, %d round(s) x %ds, interleaved; "
          "event MPM %dx%d (gunicorn %dx%d gthread, uWSGI %dx%d); Python %s"
          % (args.threads, args.connections, args.rounds, args.duration,
             PROCESSES, THREADS, PROCESSES, GUNICORN_THREADS, PROCESSES,
             THREADS,
             sys.version.split()[0]))
    print("pyhost module: %s" % pyhost.module_location())
    print("'vs C' = req/s over the C handler's hello in the same connection "
          "mode; 'vs mod_wsgi' = over mod_wsgi embedded, same workload; "
          "both the median of the per-round ratios; "
          "'spread' = (max - min) / median req/s over the rounds")
    for mode in [m for m in args.modes.split(",") if m]:
        for w in [w for w in args.workloads.split(",") if w]:
            rows = [(n, table[(n, w, mode)]) for n in setups
                    if (n, w, mode) in table]
            if not rows:
                continue
            print()
            print("%s, %s (%s)" % (w, mode, WORKLOADS[w][2]))
            asgi = w in ASGI_WORKLOADS
            # ASGI: the reference is uvicorn, and the last column is
            # pyhost's own ratio over each setup (what the targets read)
            ref = "uvicorn" if asgi else "mod_wsgi"
            print("  %-16s %11s %7s %9s %7s %11s %7s%s" % (
                "setup", "msg/s (med)" if w == "ws_echo" else "req/s (med)",
                "spread", "p99 ms", "vs C", "vs " + ref, "errors",
                " pyhost_asgi/this" if asgi else ""))
            fmt = lambda v: "%.2f" % v if v is not None else "-"
            for n, row in rows:
                vc = ratio(table, n, "c", w, mode,
                           wb="asgi_hello" if asgi else "hello")
                vw = ratio(table, n, ref, w, mode)
                over = ""
                if asgi:
                    over = " %17s" % fmt(ratio(table, "pyhost_asgi", n, w,
                                               mode))
                print("  %-16s %11.0f %6.0f%% %9.2f %7s %11s %7d%s" % (
                    n, row["rps"], 100 * row["spread"], row["p99_ms"],
                    fmt(vc), fmt(vw), row["errors"], over))
    print()
    print("peak RSS (VmHWM) of the serving processes over the whole run")
    print("  %-16s %6s %14s %14s" % ("setup", "procs", "max/proc MB",
                                     "sum MB"))
    for n in setups:
        r = report["rss"].get(n)
        if r:
            print("  %-16s %6d %14.1f %14.1f" % (
                n, r["processes"], r["peak_kb_max"] / 1024.0,
                r["peak_kb_sum"] / 1024.0))
    if report["leaks"]:
        print()
        print("memory growth: RSS (kB) of the serving processes before, "
              "halfway through and after N keep-alive hellos (after a "
              "warm-up of N/10)")
        for n, l in report["leaks"].items():
            print("  %-16s %-10s %8d requests  %8d -> %8d -> %8d kB  "
                  "%+8.2f bytes/request (second half %+.2f)"
                  % (n, l.get("workload", "hello"), l["requests"],
                     l["rss_before_kb"], l["rss_mid_kb"], l["rss_after_kb"],
                     l["bytes_per_request"],
                     l["bytes_per_request_second_half"]))
    for n, note in report["notes"].items():
        print("note: %s: %s" % (n, note))
    for n, why in report["skipped"].items():
        print("skipped: %s: %s" % (n, why))
    if not args.smoke:
        print()
        print("targets (issue #5; #4 when pyhost_daemon ran; #13 when "
              "pyhost_asgi ran; #17 when pyhost_nometrics ran)")
        for what, value, goal, met in targets(table, report):
            if value is None:
                continue  # its setups were not in this run
            print("  %-44s %8s  goal %s %-5s %s" % (
                what, "%.2f" % value if value is not None else "-",
                ">=" if "RSS" not in what and "growth" not in what else "<=",
                goal, {True: "met", False: "MISSED", None: "n/a"}[met]))
    return table


def _exit_on_sigterm(signum, frame):
    # SIGTERM (a timeout in the smoke test, a CI runner) unwinds through the
    # finally blocks, which stop every server this run started.
    raise SystemExit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(argv)
    report = run(args)
    table = print_report(report, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "setups": report["setups"], "skipped": report["skipped"],
                "results": [dict(setup=n, workload=w, mode=m, **v)
                            for (n, w, m), v in table.items()],
                "rss": report["rss"], "leaks": report["leaks"],
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
