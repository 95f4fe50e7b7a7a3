"""Daemon mode: WSGIDaemonProcess groups forked and supervised by Apache's
parent, requests relayed to them over pooled UNIX sockets. Every test runs
a real Apache with the real module; daemons are found among the parent's
descendants by their title and stopped only through Apache."""

import grp
import http.client
import importlib.util
import json
import os
import pwd
import signal
import socket
import struct
import sys
import sysconfig
import threading
import time

import pytest

from harness import CRASH_RE, MPMS, wait_for

APP = "@APPS@/daemon.wsgi"


def conf(opts="processes=2 threads=4", extra="", name="grp"):
    return (
        "WSGIDaemonProcess %s display-name=%%{GROUP} %s\n"
        "WSGIScriptAlias /d %s process-group=%s\n"
        "WSGIScriptAlias /e %s\n" % (name, opts, APP, name, APP)
    ) + extra


def _bench_descendants():
    # The process-tree walk bench/run.py measures servers with: a script
    # beside the tests, not a package, so loaded from its file.
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "bench", "run.py")
    spec = importlib.util.spec_from_file_location("pyhost_bench_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.descendants


descendants = _bench_descendants()


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def daemon_pids(srv, group="grp"):
    return sorted(p for p in descendants(srv.proc.pid)
                  if cmdline(p).startswith("(wsgi:%s)" % group))


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def info(srv, path="/d/info", **kw):
    r = srv.get(path, **kw)
    assert r.status == 200, (r.status, r.body[:300], srv.error_log()[-3000:])
    return r.json()


def start(short_server, opts="processes=2 threads=4", extra="", mpm="event",
          name="daemon"):
    srv = short_server(name, mpm=mpm, extra=conf(opts, extra))
    srv.start()
    wait_for(lambda: len(daemon_pids(srv)) >= 1, timeout=15)
    return srv


class Load:
    """Bounded load from a few client threads: stops after `duration`
    seconds or `limit` requests, whichever comes first; records each
    request's (start, end, status or exception)."""

    def __init__(self, srv, path, threads=4, duration=10.0, limit=20000):
        self.srv, self.path = srv, path
        self.results = []
        self.lock = threading.Lock()
        self.stop_at = time.time() + duration
        self.limit = limit
        self.halt = threading.Event()
        self.retried = 0
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(threads)]

    def run(self):
        conn = None
        while not self.halt.is_set() and time.time() < self.stop_at:
            with self.lock:
                if len(self.results) >= self.limit:
                    return
            t0 = time.time()
            outcome = None
            for attempt in range(2):
                fresh = conn is None
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(
                            "127.0.0.1", self.srv.port, timeout=15)
                    conn.request("GET", self.path)
                    resp = conn.getresponse()
                    resp.read()
                    outcome = resp.status
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError,
                        BrokenPipeError) as e:
                    # An idle keep-alive connection that Apache closed as we
                    # reused it (a graceful restart closes them): the request
                    # never reached Apache, and HTTP clients retry it once on
                    # a new connection (RFC 9112, 9.3.1). On a fresh
                    # connection the same error is a failure.
                    outcome = repr(e)
                    conn = None
                    if fresh:
                        break
                    with self.lock:
                        self.retried += 1
                except Exception as e:
                    outcome = repr(e)
                    conn = None
                    break
            with self.lock:
                self.results.append((t0, time.time(), outcome))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, exc_type, *exc):
        # The clients stop by themselves (duration or limit); an error in
        # the with-block stops them at once.
        if exc_type is not None:
            self.halt.set()
        for t in self.threads:
            t.join(60)

    def failures(self, after=None, before=None):
        return [r for r in self.results if r[2] != 200
                and (after is None or r[0] >= after)
                and (before is None or r[1] <= before)]


def no_crash(srv):
    log = srv.error_log()
    crashes = [c for c in CRASH_RE.findall(log)]
    assert not crashes, log[-4000:]


# ---- directives ---------------------------------------------------------------

@pytest.mark.core  # in the Python version matrix
def test_request_runs_in_daemon_with_its_environ(short_server):
    srv = start(short_server, "processes=2 threads=4")
    d = info(srv, "/d/info?x=1", headers={"X-Test": "yes"})
    e = info(srv, "/e/info")
    daemons = daemon_pids(srv)
    assert d["pid"] in daemons and e["pid"] not in daemons
    assert d["ppid"] == srv.proc.pid
    assert d["process_group"] == "grp" and e["process_group"] == ""
    assert d["multithread"] is True and d["multiprocess"] is True
    assert d["script_name"] == "/d" and d["path_info"] == "/info"
    assert d["query"] == "x=1" and d["x_test"] == "yes"
    assert d["remote_addr"] == "127.0.0.1"
    assert len(daemons) == 2
    no_crash(srv)


def test_user_group_home_path_umask_lang(short_server, workspace):
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrgid(nobody.pw_gid).gr_name
    home = os.path.join(workspace.root, "daemon-home")
    os.makedirs(home, exist_ok=True)
    os.chmod(home, 0o755)
    extra_path = os.path.join(workspace.root, "daemon-path")
    os.makedirs(extra_path, exist_ok=True)
    os.chmod(extra_path, 0o755)
    srv = start(short_server,
                "processes=1 threads=2 user=nobody group=%s home=%s "
                "python-path=%s umask=0027 lang=C.UTF-8" % (nogroup, home, extra_path))
    d = info(srv)
    assert d["uid"] == nobody.pw_uid and d["gid"] == nobody.pw_gid
    assert d["groups"] in ([], [nobody.pw_gid])
    assert d["cwd"] == home
    assert extra_path in d["path"]
    assert d["umask"] == 0o027
    assert d["lang"] == "C.UTF-8"
    # Apache's own children still run as Apache's User.
    e = info(srv, "/e/info")
    assert e["uid"] != nobody.pw_uid


def test_display_name_and_process_count(short_server):
    srv = start(short_server, "processes=3 threads=2")
    wait_for(lambda: len(daemon_pids(srv)) == 3, timeout=15)
    seen = {info(srv)["pid"] for _ in range(30)}
    assert seen <= set(daemon_pids(srv))


@pytest.mark.core  # in the Python version matrix
def test_application_groups_inside_a_daemon(short_server):
    extra = ("WSGIScriptAlias /a %s process-group=grp application-group=one\n"
             "WSGIScriptAlias /b %s process-group=grp application-group=two\n"
             % (APP, APP))
    srv = start(short_server, "processes=1 threads=2", extra)
    a1 = info(srv, "/a/info")["count"]
    a2 = info(srv, "/a/info")["count"]
    b1 = info(srv, "/b/info")
    assert a2 == a1 + 1
    assert b1["count"] == 1 and b1["application_group"] == "two"


def test_wsgi_process_group_directive_and_env(short_server):
    extra = ("WSGIScriptAlias /p %s\n"
             "<Location /p>\n  WSGIProcessGroup grp\n</Location>\n"
             "WSGIScriptAlias /v %s\n"
             "<Location /v>\n  SetEnv PYHOST_GROUP grp\n"
             "  WSGIProcessGroup %%{ENV:PYHOST_GROUP}\n</Location>\n"
             "WSGIScriptAlias /missing %s\n"
             "<Location /missing>\n  WSGIProcessGroup nosuch\n</Location>\n"
             % (APP, APP, APP))
    srv = start(short_server, "processes=1 threads=2", extra)
    assert info(srv, "/p/info")["process_group"] == "grp"
    assert info(srv, "/v/info")["process_group"] == "grp"
    mark = srv.log_mark()
    assert srv.get("/missing/info").status == 500
    assert "PYH0030" in srv.log_since(mark)
    assert srv.get("/d/info").status == 200


@pytest.mark.parametrize("opts,needle", [
    ("processes=2 bogus=1", "unknown option 'bogus'"),
    ("processes=many", "processes=many is not a whole number"),
    ("threads=0", "threads=0 is not a whole number >= 1"),
    ("request-timeout=soon", "request-timeout=soon is not a number of seconds"),
    ("user=pyhost-no-such-user", "no such user 'pyhost-no-such-user'"),
    ("user=root", "refusing to run daemon group 'grp' as root"),
    ("processes", "option 'processes' is not of the form name=value"),
])
def test_bad_options_stop_startup_naming_them(short_server, opts, needle):
    srv = short_server("badopt", extra=conf(opts))
    srv.write_config()
    rc, out = srv.config_test()
    assert rc != 0
    assert needle in out, out


def test_undefined_inline_group_is_a_startup_error(short_server):
    srv = short_server("nogroup", extra="WSGIScriptAlias /d %s process-group=ghost\n" % APP)
    with pytest.raises(Exception):
        srv.start(timeout=15)
    assert "PYH0030" in srv.error_log() and "ghost" in srv.error_log()


def test_duplicate_group_name_is_an_error(short_server):
    srv = short_server("dupgroup", extra=conf() + "WSGIDaemonProcess grp\n")
    srv.write_config()
    rc, out = srv.config_test()
    assert rc != 0 and "already defined" in out, out


def test_restrict_embedded(short_server):
    srv = start(short_server, "processes=1 threads=2",
                "WSGIRestrictEmbedded On\n")
    assert info(srv)["process_group"] == "grp"
    mark = srv.log_mark()
    assert srv.get("/e/info").status == 500
    assert "PYH0024" in srv.log_since(mark)
    # Apache's children never started Python: no interpreter-start lines.
    assert "PYH0004" not in srv.error_log()


# ---- the relay -------------------------------------------------------------------

def test_socket_owner_mode_and_foreign_requests(short_server):
    srv = start(short_server, "processes=1 threads=2")
    socks = [os.path.join(srv.run, f) for f in os.listdir(srv.run) if f.endswith(".sock")]
    assert len(socks) == 1, os.listdir(srv.run)
    st = os.stat(socks[0])
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == pwd.getpwnam("www-data").pw_uid
    # Root may connect, but a frame without this Apache's secret is refused.
    mark = srv.log_mark()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(socks[0])
    payload = b"\0" * 16 + struct.pack("=IiQQ", 0, 0, 0, 0)
    s.sendall(struct.pack("=B3xI", ord("Q"), len(payload)) + payload)
    assert s.recv(100) == b""  # closed without an answer
    s.close()
    assert "PYH0074" in srv.wait_log_text(mark, "PYH0074")
    # Another user cannot connect at all (mode 0600, owned by www-data).
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                c.connect(socks[0])
                code = 1
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert srv.get("/d/info").status == 200


def test_connections_are_reused(short_server):
    srv = start(short_server, "processes=1 threads=2", "LogLevel pyhost:debug\n")
    conn, retried = srv.connection(), 0
    for _ in range(200):
        try:
            conn.request("GET", "/d/info")
            r = conn.getresponse()
        except http.client.RemoteDisconnected:
            # Apache may close an idle client keep-alive connection just as
            # it is reused (seen once in ~200 runs on a loaded machine; the
            # request never reached Apache): HTTP clients retry such a
            # request once on a new connection (RFC 9112, 9.3.1). What this
            # test counts is the relay's connections, which that does not
            # touch.
            retried += 1
            conn.close()
            conn = srv.connection()
            conn.request("GET", "/d/info")
            r = conn.getresponse()
        r.read()
        assert r.status == 200
    assert retried <= 1, retried
    accepted = srv.error_log().count("PYH0053")
    assert 1 <= accepted <= 4, accepted


def test_frames_of_every_size_on_one_reused_connection(short_server):
    # The daemon's connection buffers start small and grow only for large
    # frames (and shrink between requests): small, medium, buffer-sized and
    # larger frames in turn, both ways, must all pass on one relay
    # connection.
    srv = start(short_server, "processes=1 threads=1", "LogLevel pyhost:debug\n")
    conn = srv.connection(timeout=60)

    def call(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()

    assert call("GET", "/d/info")[0] == 200
    accepted = srv.error_log().count("PYH0053")
    assert accepted >= 1
    # Request headers past the daemon's read buffer: a large Q frame.
    big = {"X-Test": "t" * 7000}
    big.update(("X-Pad-%d" % i, "p" * 7000) for i in range(3))
    for size in (10, 5000, 20000, 65536 - 8, 65536, 200000, 100, 3 << 20, 1):
        body = os.urandom(size)
        status, got = call("POST", "/d/echo", body)
        assert status == 200 and got == body, size
        status, got = call("GET", "/d/info", headers=big)
        assert status == 200 and json.loads(got)["x_test"] == big["X-Test"]
        status, got = call("GET", "/d/stream?n=3000")
        assert status == 200
        assert got == b"".join(b"chunk %d\n" % i for i in range(3000))
    assert srv.error_log().count("PYH0053") == accepted, "connection not reused"
    no_crash(srv)


@pytest.mark.core  # in the Python version matrix
def test_large_post_streams_both_ways(short_server):
    srv = start(short_server, "processes=1 threads=2")
    body = os.urandom(5 << 20)
    r = srv.post("/d/echo", body, timeout=60)
    assert r.status == 200 and r.body == body
    # Chunked request bodies need WSGIChunkedRequest, as in embedded mode.
    conn = srv.connection()
    conn.request("POST", "/d/echo", body=iter([b"a" * 1000, b"b" * 1000]),
                 encode_chunked=True)
    assert conn.getresponse().status == 411


def test_chunked_request_body(short_server):
    srv = start(short_server, "processes=1 threads=2",
                "<Location /d>\n  WSGIChunkedRequest On\n</Location>\n")
    conn = srv.connection()
    chunks = [os.urandom(70000) for _ in range(5)]
    conn.request("POST", "/d/echo", body=iter(chunks), encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"".join(chunks)


def test_streamed_response_arrives_before_the_app_finishes(short_server):
    srv = start(short_server, "processes=1 threads=2")
    sock = srv.open_socket()
    sock.sendall(b"GET /d/slowstream?t=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    data = b""
    while b"first" not in data:
        data += sock.recv(4096)
    assert time.time() - t0 < 1.5, "first chunk held back until the end"
    sock.close()
    r = srv.get("/d/stream?n=100")
    assert r.body == b"".join(b"chunk %d\n" % i for i in range(100))


def test_file_wrapper_and_head(short_server, workspace):
    path = os.path.join(workspace.root, "daemon-blob.bin")
    data = os.urandom(3 << 20)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    srv = start(short_server, "processes=1 threads=2")
    r = srv.get("/d/file?path=" + path)
    assert r.status == 200 and r.body == data
    assert r.header("Content-Length") == str(len(data))
    h = srv.request("HEAD", "/d/info")
    assert h.status == 200 and h.body == b""


@pytest.mark.core  # in the Python version matrix
def test_app_errors_in_daemon(short_server):
    srv = start(short_server, "processes=1 threads=2",
                "<Location /d/status>\n  WSGIErrorOverride On\n</Location>\n")
    mark = srv.log_mark()
    assert srv.get("/d/raises").status == 500
    entries = [e for e in srv.wait_log_entries(mark, 1) if "PYH0049" not in e]
    assert len(entries) == 1 and "PYH0100" in entries[0], entries
    # the exception's own line, one of the traceback's lines after the entry
    assert "RuntimeError: pyhost-test-daemon-raises" in srv.log_since(mark)
    assert " 127.0.0.1:" in entries[0]  # the client, as Apache saw it
    # Broken after the headers: the client sees a cut response.
    raw = srv.raw(b"GET /d/late-error HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.status == 200 and not raw.complete
    # WSGIErrorOverride: Apache's own error page, not the app's body.
    r = srv.get("/d/status?code=404")
    assert r.status == 404 and b"app body" not in r.body
    assert srv.get("/d/info").status == 200
    no_crash(srv)


# ---- failures -------------------------------------------------------------------

@pytest.mark.core  # in the Python version matrix
def test_killed_daemon_costs_only_its_requests(short_server):
    srv = start(short_server, "processes=1 threads=4")
    victim = info(srv)["pid"]
    result = {}

    def slow():
        result["r"] = srv.get("/d/sleep?t=5", timeout=30)
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    os.kill(victim, signal.SIGKILL)
    t.join(30)
    assert result["r"].status == 502
    t0 = time.time()
    wait_for(lambda: daemon_pids(srv) and daemon_pids(srv)[0] != victim, timeout=5)
    new = info(srv)
    assert new["pid"] != victim
    back = time.time() - t0
    assert back < 3, "daemon took %.1fs to come back" % back
    assert "PYH0040" in srv.error_log()


def test_segfault_in_app_costs_one_request(short_server):
    srv = start(short_server, "processes=1 threads=4")
    before = info(srv)["pid"]
    mark = srv.log_mark()
    assert srv.get("/d/segv").status == 502
    assert "PYH0072" in srv.wait_log_text(mark, "PYH0072")
    assert "signal 11" in srv.wait_log_text(mark, "PYH0040")
    assert info(srv)["pid"] != before


def test_socket_prefix(short_server, workspace, token):
    d = os.path.join(workspace.root, "socks-" + token)
    os.makedirs(d)
    srv = start(short_server, "processes=1 threads=2",
                "WSGISocketPrefix %s/relay\n" % d)
    assert srv.get("/d/info").status == 200
    socks = os.listdir(d)
    assert len(socks) == 1 and socks[0].startswith("relay.") and socks[0].endswith(".sock")
    srv.stop()
    assert os.listdir(d) == []


@pytest.mark.parametrize("mpm", MPMS)
def test_kill_under_load(short_server, mpm):
    srv = start(short_server, "processes=2 threads=4", mpm=mpm)
    victim = daemon_pids(srv)[0]
    with Load(srv, "/d/info", threads=4, duration=8, limit=20000) as load:
        time.sleep(2)
        kill_at = time.time()
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(daemon_pids(srv)) == 2 and victim not in daemon_pids(srv),
                 timeout=5)
        back_at = time.time()
        time.sleep(2)
    assert len(load.results) > 100
    assert not load.failures(before=kill_at)
    # Only requests the killed process held (at most one per client) fail.
    assert len(load.failures()) <= 4, load.failures()
    assert not load.failures(after=back_at + 0.5), load.failures(after=back_at)
    assert back_at - kill_at < 2


def test_request_timeout_gives_504_and_interrupts(short_server):
    srv = start(short_server, "processes=1 threads=2 request-timeout=1")
    mark = srv.log_mark()
    t0 = time.time()
    r = srv.get("/d/spin?t=6", timeout=30)
    assert r.status == 504
    assert time.time() - t0 < 4
    assert "PYH0052" in srv.wait_log_text(mark, "PYH0052")
    assert "TimeoutError" in srv.wait_log_text(mark, "TimeoutError")
    assert srv.get("/d/info").status == 200


def test_stuck_request_recycles_the_process(short_server):
    srv = start(short_server, "processes=1 threads=2 request-timeout=1 graceful-timeout=1")
    before = info(srv)["pid"]
    assert srv.get("/d/sleep?t=20", timeout=30).status == 504
    wait_for(lambda: daemon_pids(srv) and before not in daemon_pids(srv), timeout=10)
    assert info(srv)["pid"] != before


def test_queue_timeout_gives_503(short_server):
    srv = start(short_server, "processes=1 threads=1 queue-timeout=1")
    first = {}
    t = threading.Thread(target=lambda: first.update(r=srv.get("/d/sleep?t=4", timeout=30)))
    t.start()
    time.sleep(0.5)
    t0 = time.time()
    r = srv.get("/d/info", timeout=30)
    waited = time.time() - t0
    t.join(30)
    assert first["r"].status == 200
    assert r.status == 503, r.status
    assert waited < 3.5, "503 came only after the slow request (%.1fs)" % waited
    assert "PYH0051" in srv.error_log()


def test_maximum_requests_recycles_without_losing_requests(short_server):
    srv = start(short_server, "processes=2 threads=4 maximum-requests=25")
    with Load(srv, "/d/info", threads=4, duration=6, limit=400) as load:
        pass
    assert len(load.results) >= 100
    assert not load.failures(), load.failures()[:5]
    assert "PYH0047" in srv.error_log()
    assert "maximum-requests" in srv.error_log()


def test_restart_interval_and_inactivity_timeout(short_server):
    srv = start(short_server, "processes=1 threads=2 inactivity-timeout=1")
    first = info(srv)["pid"]
    wait_for(lambda: daemon_pids(srv) and first not in daemon_pids(srv), timeout=10)
    assert info(srv)["pid"] != first
    srv2 = start(short_server, "processes=1 threads=2 restart-interval=1", name="interval")
    pids = set()
    with Load(srv2, "/d/info", threads=2, duration=4, limit=5000) as load:
        pass
    assert not load.failures(), load.failures()[:5]
    pids = set()
    for _ in range(5):
        pids.add(info(srv2)["pid"])
        time.sleep(0.5)
    assert "restart-interval" in srv2.error_log()


def test_memory_limit_recycles(short_server):
    srv = start(short_server, "processes=1 threads=2 memory-limit=%d" % (200 << 20))
    first = info(srv)["pid"]
    for _ in range(4):
        assert srv.get("/d/grow?mb=64").status == 200
    wait_for(lambda: daemon_pids(srv) and first not in daemon_pids(srv), timeout=10)
    assert "memory-limit" in srv.error_log()


@pytest.mark.parametrize("mpm", MPMS)
def test_graceful_restart_under_load_loses_nothing(short_server, mpm):
    srv = start(short_server, "processes=2 threads=4", mpm=mpm)
    old = set(daemon_pids(srv))
    with Load(srv, "/d/info", threads=4, duration=8, limit=20000) as load:
        time.sleep(1.5)
        os.kill(srv.proc.pid, signal.SIGUSR1)
        time.sleep(2.5)
        os.kill(srv.proc.pid, signal.SIGUSR1)
        time.sleep(2)
    assert len(load.results) > 100
    assert not load.failures(), load.failures()[:5]
    wait_for(lambda: not any(alive(p) for p in old), timeout=20)
    # The second restart's daemons may still be starting: wait for both.
    assert wait_for(lambda: len(daemon_pids(srv)) == 2, timeout=20), daemon_pids(srv)
    no_crash(srv)


@pytest.mark.parametrize("mpm", MPMS)
def test_stop_leaves_no_daemon(short_server, mpm):
    srv = start(short_server, "processes=2 threads=2", mpm=mpm)
    pids = daemon_pids(srv)
    assert len(pids) == 2
    assert srv.get("/d/info").status == 200
    rc = srv.stop(signal.SIGTERM)
    assert rc == 0
    assert not any(alive(p) for p in pids)
    assert not [f for f in os.listdir(srv.run) if f.endswith(".sock")]
    assert "PYH0043" not in srv.error_log()


def test_restart_replaces_daemons(short_server):
    srv = start(short_server, "processes=1 threads=2")
    old = daemon_pids(srv)
    srv.graceful_restart()
    wait_for(lambda: not any(alive(p) for p in old), timeout=20)
    assert info(srv)["pid"] not in old
    # SIGHUP: a hard restart.
    old = daemon_pids(srv)
    before = srv.error_log().count("resuming normal operations")
    os.kill(srv.proc.pid, signal.SIGHUP)
    wait_for(lambda: srv.error_log().count("resuming normal operations") > before,
             timeout=20)
    srv.wait_ready()
    wait_for(lambda: not any(alive(p) for p in old), timeout=20)
    assert info(srv)["pid"] not in old
    no_crash(srv)


# ---- scripts in daemon processes ------------------------------------------------

@pytest.mark.core  # in the Python version matrix
def test_import_script_preloads_into_daemon_group(short_server, workspace):
    def preloaded():
        return {f for f in os.listdir(workspace.state) if f.startswith("preload-")}
    before = preloaded()
    extra = ("WSGIImportScript @APPS@/preload.wsgi process-group=grp "
             "application-group=%{GLOBAL}\n"
             "WSGIScriptAlias /pre @APPS@/preload_check.wsgi process-group=grp\n")
    srv = start(short_server, "processes=2 threads=2", extra)
    wait_for(lambda: len(daemon_pids(srv)) == 2, timeout=15)
    # Both daemon processes ran it at their start, before any request;
    # Apache's own children did not (the import names the daemon group).
    new = wait_for(lambda: len(preloaded() - before) >= 2 and preloaded() - before,
                   timeout=15)
    assert new, "WSGIImportScript did not run in the daemon processes"
    pids = {int(f.split("-")[1]) for f in new}
    assert pids == set(daemon_pids(srv)), (pids, daemon_pids(srv))
    j = srv.get("/pre").json()
    assert j["preloaded"] is not None and j["preloaded"]["pid"] == j["pid"]


@pytest.mark.core  # in the Python version matrix
def test_script_reloading_in_daemon(short_server, workspace, token):
    paths = {name: os.path.join(workspace.state, "daemon-%s-%s.wsgi" % (name, token))
             for name in ("on", "off")}
    with open(os.path.join(workspace.apps, "reload_template.wsgi")) as f:
        text = f.read()

    def write(version, bump):
        for path in paths.values():
            with open(path, "w") as f:
                f.write(text.replace('VERSION = "v1"', 'VERSION = "%s"' % version))
            os.chmod(path, 0o644)
            st = os.stat(path)
            os.utime(path, (st.st_atime, st.st_mtime + bump))
    write("first", 0)
    srv = start(short_server, "processes=1 threads=2",
                "WSGIScriptAlias /r %s process-group=grp\n"
                "WSGIScriptAlias /roff %s process-group=grp\n"
                "<Location /roff>\n  WSGIScriptReloading Off\n</Location>\n"
                % (paths["on"], paths["off"]))
    r1 = srv.get("/r").text
    assert r1.startswith("first pid=%d" % daemon_pids(srv)[0]), r1
    assert srv.get("/roff").text.startswith("first")
    write("second", 10)
    r2 = srv.get("/r").text
    assert r2.startswith("second"), r2
    assert r2.split()[1] == r1.split()[1], "reloading must not restart the daemon"
    assert srv.get("/roff").text.startswith("first"), "reloaded with WSGIScriptReloading Off"


# ---- python-home of a daemon group ------------------------------------------------

THIS = "%d.%d" % sys.version_info[:2]
# The stdlib directory's version: "3.13t" on a free-threaded build.
LIBV = THIS + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")


def _fake_home(workspace, name, version=None, mode=0o755):
    home = os.path.join(workspace.root, name)
    if version:
        lib = os.path.join(home, "lib", "python" + version)
        os.makedirs(lib, exist_ok=True)
        open(os.path.join(lib, "os.py"), "w").close()
    os.makedirs(home, exist_ok=True)
    for d, _, files in os.walk(home):
        os.chmod(d, 0o755)
    os.chmod(home, mode)
    return home


def _daemon_startup_error(short_server, name, opts):
    srv = short_server(name, extra=conf(opts))
    srv.start(wait=False)
    assert wait_for(lambda: not srv.running(), timeout=20), "Apache started"
    lines = [l for l in srv.error_log().splitlines() if "PYH" in l]
    assert len(lines) == 1, lines
    return lines[0][lines[0].index("PYH"):]


@pytest.mark.core
def test_daemon_python_home_is_a_venv(short_server):
    # The suite's own venv (python3 -m venv), named by python-home= only.
    srv = short_server("dvenv", extra=conf("processes=1 threads=2 python-home=%s"
                                           % sys.prefix), python_directives=False)
    srv.start()
    wait_for(lambda: daemon_pids(srv), timeout=15)
    r = srv.get("/d/info")
    assert r.status == 200, srv.error_log()[-2000:]
    assert any(p.startswith(sys.prefix) for p in r.json()["path"]), r.json()["path"]


def test_daemon_python_home_of_another_version(short_server, workspace):
    home = _fake_home(workspace, "dhome-399", version="3.99")
    assert _daemon_startup_error(
        short_server, "dhome399", "python-home=%s" % home) == (
        "PYH0002: WSGIDaemonProcess grp python-home '%s' is Python 3.99 but "
        "mod_pyhost was built for Python %s; rebuild pyhost with that Python "
        "(pip install mod-pyhost) or point python-home= at a Python %s prefix or "
        "venv" % (home, LIBV, LIBV))


def test_daemon_python_home_unreadable_by_its_user(short_server, workspace):
    home = _fake_home(workspace, "dhome-private", version=LIBV, mode=0o700)
    assert _daemon_startup_error(
        short_server, "dprivate", "user=nobody python-home=%s" % home) == (
        "PYH0003: WSGIDaemonProcess grp user 'nobody' cannot read the Python "
        "installation '%s' ('%s' is mode 0700); use a Python or venv outside "
        "it (e.g. /usr/bin/python3 -m venv /opt/venv) or grant that user read "
        "access" % (home, home))


def test_daemons_exit_when_apache_parent_dies(short_server):
    """Apache's parent killed outright (no cleanup of ours runs): its
    daemons notice and leave instead of lingering as orphans."""
    srv = start(short_server, "processes=2 threads=2 user=nobody")
    wait_for(lambda: len(daemon_pids(srv)) == 2, timeout=15)
    pids = daemon_pids(srv)
    assert srv.get("/d/info").status == 200
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    try:
        assert wait_for(lambda: not any(alive(p) for p in pids), timeout=25), \
            [p for p in pids if alive(p)]
    finally:
        # Apache's own children outlive a SIGKILLed parent for a while:
        # they are in the session the harness started, so end them too.
        try:
            os.killpg(srv.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
