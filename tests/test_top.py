"""`pyhost top URL` (issue 17, point 6), driven in a real terminal: tmux runs
it against a real Apache serving traffic, its screen is read with
capture-pane and keys are sent with send-keys. Also `pyhost serve
--metrics`: the endpoint on 127.0.0.1 and the banner's command."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import harness
from harness import wait_for
from test_cli_serve import _make_pki, serve  # noqa: F401 (serve is a fixture)
from test_daemon import daemon_pids
from test_metrics import METRICS_LOC

PYHOST = os.path.join(os.path.dirname(sys.executable), "pyhost")
needs_tmux = pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")


# Runs pyhost top and writes its exit status (negative: the signal that
# ended it) to a file. Ctrl-C goes to the pane's whole process group: this
# wrapper ignores it, pyhost top gets the default (Python's KeyboardInterrupt).
WRAPPER = """
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
rc = subprocess.call(sys.argv[2:], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
with open(sys.argv[1], "w") as f:
    f.write(str(rc))
"""


class Tmux:
    """`pyhost top` in a detached tmux session of a tmux server of its own
    (its own socket), 150x45; its exit status lands in a file (tmux's own
    #{pane_dead_status} was seen unset for seconds on a loaded machine)."""

    def __init__(self, workspace, token, args):
        self.socket = "pyhost-top-" + token
        self.status = os.path.join(workspace.root, "top-status-" + token)
        conf = os.path.join(workspace.root, "tmux-" + token + ".conf")
        with open(conf, "w") as f:
            f.write("set -g default-terminal screen\nset -g status off\n"
                    "set -g default-size 150x45\nset -g remain-on-exit on\n")
        self.tmux("-f", conf, "new-session", "-d", "-s", "top", "-x", "150", "-y", "45",
                  "env", "TERM=screen", sys.executable, "-c", WRAPPER, self.status,
                  PYHOST, "top", *args)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              timeout=20)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "top", *keys)

    def exit_status(self, timeout=20):
        """"0", or "signal N", once pyhost top has exited; else None."""
        def read():
            try:
                with open(self.status) as f:
                    rc = f.read().strip()
            except OSError:
                return None
            return "signal %d" % -int(rc) if rc.startswith("-") else rc or None
        wait_for(lambda: read(), timeout=timeout)
        return read()

    def close(self):
        self.tmux("kill-server")  # this socket's server only: the one we started


@pytest.fixture
def tmux(workspace, token):
    made = []

    def start(*args):
        t = Tmux(workspace, token + str(len(made)), [str(a) for a in args])
        made.append(t)
        return t
    yield start
    for t in made:
        t.close()


class Load:
    """Requests to `path`, one after another, until stopped (at most 60 s)."""

    def __init__(self, port, path):
        self.stop_ev = threading.Event()
        self.count = 0
        self.t = threading.Thread(target=self.run, args=(port, path), daemon=True)
        self.t.start()

    def run(self, port, path):
        deadline = time.monotonic() + 60
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                harness.do_request(conn, "GET", path)
                self.count += 1
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
            time.sleep(0.01)

    def stop(self):
        self.stop_ev.set()
        self.t.join(15)


def mount_row(screen, mount):
    """The mount's row as {column: text}, or None."""
    header = next((l for l in screen.splitlines() if l.startswith("MOUNT")), None)
    for line in screen.splitlines():
        if header and line.split() and line.split()[0] == mount:
            names = ["MOUNT", "PROTOCOL", "REQ/S", "TOTAL", "5XX/S", "P50", "P90", "P99"]
            return dict(zip(names, line.split()))
    return None


def rate_shown(screen, mount):
    row = mount_row(screen, mount)
    try:
        return row and float(row["REQ/S"]) > 0
    except ValueError:
        return False


@needs_tmux
def test_top_shows_live_traffic_and_quits_on_q(short_server, mpm, tmux):
    extra = ("WSGIDaemonProcess grp display-name=%{GROUP} processes=2 threads=2\n"
             "WSGIScriptAlias /d @APPS@/daemon.wsgi process-group=grp\n"
             "WSGIScriptAlias /e @APPS@/daemon.wsgi\n") + METRICS_LOC
    srv = short_server("top", mpm=mpm, extra=extra)
    srv.start()
    assert wait_for(lambda: len(daemon_pids(srv)) == 2, timeout=15)
    loads = [Load(srv.port, "/e/info"), Load(srv.port, "/d/info")]
    try:
        t = tmux("--interval", "0.5", "http://127.0.0.1:%d/metrics" % srv.port)
        assert wait_for(lambda: rate_shown(t.screen(), "/e") and rate_shown(t.screen(), "/d"),
                        timeout=20), t.screen()
        screen = t.screen()
        assert screen.startswith("pyhost top - http://127.0.0.1:%d/metrics" % srv.port), screen
        row = mount_row(screen, "/e")
        assert row["PROTOCOL"] == "wsgi" and int(row["TOTAL"]) > 0, screen
        assert "P99" in row, screen
        assert float(row["P50"]) >= 0 and float(row["P99"]) >= float(row["P50"]), screen
        m = re.search(r"threads busy (\d+) idle (\d+)  processes (\d+)", screen)
        assert m and int(m.group(1)) + int(m.group(2)) > 0 and int(m.group(3)) >= 3, screen
        assert re.search(r"^requests \d+\.\d/s", screen, re.M), screen
        # each process with its threads, and the daemon group
        assert re.search(r"^child/\d+ +\d+ +\d+ +[\d.]+ [KMG]i?B", screen, re.M), screen
        assert re.search(r"^daemon/grp/[01] ", screen, re.M), screen
        assert re.search(r"^grp +2 +\d+ +0 ", screen, re.M), screen
    finally:
        for load in loads:
            load.stop()
    t.keys("q")
    assert t.exit_status() == "0", t.screen()
    # the terminal was given back: no traceback, the shell's screen again
    assert "Traceback" not in t.screen()


@needs_tmux
def test_top_exits_cleanly_on_ctrl_c(short_server, tmux):
    srv = short_server("top-int", extra="WSGIScriptAlias /e @APPS@/daemon.wsgi\n" + METRICS_LOC)
    srv.start()
    t = tmux("http://127.0.0.1:%d/metrics" % srv.port)
    assert wait_for(lambda: mount_row(t.screen(), "/e"), timeout=15), t.screen()
    t.keys("C-c")
    assert t.exit_status() == "0", t.screen()
    assert "Traceback" not in t.screen() and "KeyboardInterrupt" not in t.screen(), t.screen()


def run_top(*args, timeout=30):
    return subprocess.run([PYHOST, "top", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_top_one_line_error_when_the_url_does_not_answer():
    r = run_top("http://127.0.0.1:%d/metrics" % harness.free_port())
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0], r.stderr
    assert r.stdout == "", r.stdout


def test_top_one_line_error_when_the_url_is_not_pyhost(short_server):
    srv = short_server("top-notpyhost", extra="WSGIScriptAlias /e @APPS@/daemon.wsgi\n" + METRICS_LOC)
    srv.start()
    r = run_top("http://127.0.0.1:%d/e/info" % srv.port)
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "not a pyhost metrics endpoint" in lines[0], r.stderr
    r = run_top("http://127.0.0.1:%d/nothing-here" % srv.port)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "404" in r.stderr, r.stderr


@needs_tmux
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_top_over_tls_with_a_test_ca(serve, workspace, token, tmux):  # noqa: F811
    d = os.path.join(workspace.root, "pki-top-" + token)
    os.mkdir(d)
    _make_pki(d)
    https_port = harness.free_port()
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(),
              "--https-port", https_port, "--ssl-certificate-file", os.path.join(d, "server.pem"),
              "--ssl-certificate-key-file", os.path.join(d, "server.key"), "--metrics",
              "--no-access-log")
    s.wait_url()
    url = "https://127.0.0.1:%d/.pyhost/metrics" % https_port
    # the system's CAs do not know the test CA: one line, and a way out
    r = run_top(url, "--once")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r
    assert "certificate" in r.stderr and "--ca-file" in r.stderr, r.stderr
    r = run_top(url, "--once", "--insecure", "--interval", "0.2")
    assert r.returncode == 0 and "MOUNT" in r.stdout, r
    load = Load(s.port, "/")
    try:
        t = tmux("--ca-file", os.path.join(d, "ca.pem"), "--interval", "0.5", url)
        assert wait_for(lambda: rate_shown(t.screen(), "/"), timeout=20), t.screen()
    finally:
        load.stop()
    t.keys("q")
    assert t.exit_status() == "0", t.screen()


def local_address():
    """A non-loopback address of this host, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_serve_metrics_on_loopback_with_the_top_command(serve, workspace):  # noqa: F811
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(), "--metrics")
    s.wait_url()
    line = "pyhost top http://127.0.0.1:%d/.pyhost/metrics" % s.port
    assert line in s.output(), s.output()
    assert s.get("/").status == 200
    r = s.get("/.pyhost/metrics")
    assert r.status == 200, (r.status, r.body[:300])
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"pyhost_requests", "pyhost_python_gc_collections", "pyhost_threads"} <= names, names
    # and the command it printed works
    r = run_top(*line.split()[2:], "--once", "--interval", "0.2")
    assert r.returncode == 0 and re.search(r"^/ +wsgi", r.stdout, re.M), r


def test_serve_metrics_refuses_other_hosts(serve, workspace):  # noqa: F811
    addr = local_address()
    if not addr:
        pytest.skip("this host has no non-loopback address")
    port = harness.free_port()
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--host", addr, "--port", port,
              "--metrics")
    deadline = time.monotonic() + 30
    while "serving on" not in s.output() and time.monotonic() < deadline:
        assert s.proc.poll() is None, s.output()
        time.sleep(0.05)
    # the app answers on its address; the metrics only on 127.0.0.1
    conn = http.client.HTTPConnection(addr, port, timeout=10)
    assert harness.do_request(conn, "GET", "/").status == 200
    conn = http.client.HTTPConnection(addr, port, timeout=10)
    assert harness.do_request(conn, "GET", "/.pyhost/metrics").status == 403
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert harness.do_request(conn, "GET", "/.pyhost/metrics").status == 200
    assert "pyhost top http://127.0.0.1:%d/.pyhost/metrics" % port in s.output()
