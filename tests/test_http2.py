"""HTTP/2 through mod_http2: the response cases (wsgi.file_wrapper, a
streamed generator, large list bodies, a large POST echoed, HEAD) over h2
(TLS, mod_ssl, a certificate made with `openssl req`) and h2c (cleartext,
prior knowledge), in embedded and daemon mode, each checked for its status,
length and exact bytes with curl; then h2load runs that must see every
response complete.

mod_http2 reads a file bucket on its own thread after the handler returned,
so these are the tests that see whether a file bucket owns its descriptor
(issue 12, fault 2). mod_http2 does not serve HTTP/2 under the prefork MPM
(it says so at startup, and ALPN picks HTTP/1.1) but still serves
prior-knowledge h2c; that is checked on its own.
Part of the full suite, not of the Python version matrix's core subset.
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness
from harness import CRASH_RE

# mod_http2 needs a threaded MPM; prefork has a test of its own below.
_WANTED = [m.strip() for m in (os.environ.get("PYHOST_TEST_MPMS") or ",".join(harness.MPMS)).split(",")]
H2_MPMS = [m for m in ("event", "worker") if m in _WANTED]

BIG = 1 << 20
REPEAT = 3
SMALL = 1000
# More threads than h2load has connections: when every worker of a child
# is busy, the event MPM closes its idle keep-alive connections (mod_http2
# says GOAWAY "timeout"), and h2load does not retry what it had queued on
# them, which would count as errors that are not the module's.
THREADS_CONF = """
ThreadLimit 16
ThreadsPerChild 16
StartServers 2
MinSpareThreads 16
MaxSpareThreads 32
MaxRequestWorkers 32
"""
DAEMON_CONF = """
WSGIDaemonProcess h2d display-name=%{GROUP} processes=2 threads=8
WSGIScriptAlias /e @APPS@/h2.wsgi
WSGIScriptAlias /d @APPS@/h2.wsgi process-group=h2d
"""


def _curl_has_http2():
    try:
        out = subprocess.run(["curl", "-V"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return False
    return bool(re.search(r"^Features:.*\bHTTP2\b", out, re.M))


pytestmark = [
    pytest.mark.skipif(not _curl_has_http2(), reason="needs curl with HTTP/2 (Debian's curl)"),
    pytest.mark.skipif(not shutil.which("h2load"),
                       reason="needs h2load (nghttp2-client; scripts/install-deps.sh --test)"),
    pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command"),
]


def pattern(n, salt=0):
    """What tests/apps/h2.wsgi sends: n bytes of big-endian 32-bit counters."""
    return b"".join(((salt + i) & 0xFFFFFFFF).to_bytes(4, "big")
                    for i in range((n + 3) // 4))[:n]


def _write_data(workspace):
    for name, size in (("h2-big.bin", BIG), ("h2-small.bin", SMALL)):
        path = os.path.join(workspace.data, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(pattern(size, 7))
            os.chmod(path, 0o644)


# case -> (body, the modes whose response carries Content-Length)
EXPECTED = {
    "/file-big": (pattern(BIG, 7), "ed"),
    "/file-small": (pattern(SMALL, 7), "ed"),
    "/file-nolength": (pattern(BIG, 7), "ed"),  # set from the file
    "/file-after-write": (b"head-" + pattern(SMALL, 7), ""),
    "/stream": (b"".join(pattern(16384, i * 4096) for i in range(64)), ""),
    "/stream-length": (b"".join(pattern(16384, i * 4096) for i in range(64)), "ed"),
    # A list without Content-Length: embedded mode passes it whole, so
    # Apache counts it; the daemon relay streams it in chunks.
    "/list": (b"".join(pattern(65536, i * 16384) for i in range(32)), "e"),
    "/list-length": (b"".join(pattern(65536, i * 16384) for i in range(32)), "ed"),
}


def h2_server(workspace, mpm, name):
    _write_data(workspace)
    cert, key = harness.tls_certificate(workspace)
    return harness.Apache(workspace, "%s-%s-%d" % (name, mpm, len(harness.ALL_SERVERS)),
                          mpm=mpm, ports=2,
                          extra=harness.http2_conf(cert, key) + DAEMON_CONF
                          + (THREADS_CONF if mpm != "prefork" else ""))


@pytest.fixture(scope="module", params=H2_MPMS)
def srv(request, workspace):
    """Embedded (/e) and daemon (/d) mounts of h2.wsgi; port 0 speaks h2c,
    port 1 h2 over TLS."""
    s = h2_server(workspace, request.param, "h2")
    s.start()
    yield s
    s.stop()


def base_url(srv, proto):
    if proto == "h2":
        return "https://127.0.0.1:%d" % srv.ports[1]
    return "http://127.0.0.1:%d" % srv.ports[0]


class CurlResponse:
    def __init__(self, rc, stderr, version, status, headers, body):
        self.rc, self.stderr, self.version = rc, stderr, version
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<curl rc=%s %s %s %r %d bytes; %s>" % (
            self.rc, self.version, self.status, self.headers, len(self.body), self.stderr[-300:])


def curl(srv, proto, path, method="GET", data=None, timeout=60):
    """One request with curl over h2 (ALPN; -k for the test's own
    certificate) or h2c (prior knowledge)."""
    with tempfile.TemporaryDirectory(prefix="pyhost-curl-") as tmp:
        body_path, head_path = os.path.join(tmp, "body"), os.path.join(tmp, "head")
        args = ["curl", "-sS", "--max-time", str(timeout), "-o", body_path, "-D", head_path,
                "-w", "%{http_version}"]
        args += ["--http2", "-k"] if proto == "h2" else ["--http2-prior-knowledge"]
        if method == "HEAD":
            args.append("--head")
        elif method != "GET":
            args += ["-X", method]
        if data is not None:
            data_path = os.path.join(tmp, "data")
            with open(data_path, "wb") as f:
                f.write(data)
            args += ["--data-binary", "@" + data_path,
                     "-H", "Content-Type: application/octet-stream"]
        p = subprocess.run(args + [base_url(srv, proto) + path], capture_output=True,
                           timeout=timeout + 10)
        head = open(head_path, "rb").read().decode("latin-1") if os.path.exists(head_path) else ""
        body = open(body_path, "rb").read() if os.path.exists(body_path) else b""
    lines = [l for l in head.split("\r\n") if l]
    status, headers = None, {}
    if lines:
        status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if method == "HEAD":
        body = b""  # curl --head writes the headers as its output
    return CurlResponse(p.returncode, p.stderr.decode(errors="replace"),
                        p.stdout.decode().strip(), status, headers, body)


def assert_clean(srv, mark):
    log = srv.log_since(mark)
    assert not CRASH_RE.search(log), log[-3000:]
    entries = [l for l in srv.log_entries_since(mark) if not re.search(r"PYH00(49|41)", l)]
    assert entries == [], entries


# ---- every case over h2 and h2c, embedded and daemon ---------------------------

@pytest.mark.parametrize("proto", ["h2", "h2c"])
@pytest.mark.parametrize("mode", ["e", "d"])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_response_bytes(srv, proto, mode, case):
    mark = srv.log_mark()
    want, with_length = EXPECTED[case]
    # A few times: what goes wrong with a file bucket over h2 is a race
    # between the app's close() and mod_http2's read.
    for _ in range(REPEAT):
        r = curl(srv, proto, "/%s%s" % (mode, case))
        assert r.rc == 0 and r.version == "2", r
        assert r.status == 200, r
        assert r.header("content-length") == (str(len(want)) if mode in with_length else None), r
        assert len(r.body) == len(want), r
        assert r.body == want, "body differs from byte %d" % next(
            i for i, (a, b) in enumerate(zip(r.body, want)) if a != b)
    assert_clean(srv, mark)


@pytest.mark.parametrize("proto", ["h2", "h2c"])
@pytest.mark.parametrize("mode", ["e", "d"])
def test_post_echo(srv, proto, mode):
    mark = srv.log_mark()
    data = os.urandom(3 << 20)
    r = curl(srv, proto, "/%s/echo" % mode, method="POST", data=data)
    assert r.rc == 0 and r.version == "2" and r.status == 200, r
    assert r.header("content-length") == str(len(data))
    assert r.header("x-method") == "POST"
    assert r.body == data
    assert_clean(srv, mark)


@pytest.mark.parametrize("proto", ["h2", "h2c"])
@pytest.mark.parametrize("mode", ["e", "d"])
@pytest.mark.parametrize("case", ["/file-big", "/file-after-write", "/list-length",
                                  "/stream-length"])
def test_head(srv, proto, mode, case):
    """Headers only: body the app produces after the headers went out
    must not reach mod_http2, which would send it as DATA frames on a
    HEAD response (the client then fails the stream: PROTOCOL_ERROR)."""
    mark = srv.log_mark()
    for _ in range(REPEAT):
        r = curl(srv, proto, "/%s%s" % (mode, case), method="HEAD")
        assert r.rc == 0 and r.version == "2" and r.status == 200, r
        want, with_length = EXPECTED[case]
        assert r.header("content-length") == (str(len(want)) if mode in with_length else None), r
    assert_clean(srv, mark)


# ---- h2load: every response complete ----------------------------------------------

def h2load(url, n=1000, c=10, m=10, timeout=240):
    p = subprocess.run(["h2load", "-n", str(n), "-c", str(c), "-m", str(m), url],
                       capture_output=True, text=True, timeout=timeout)
    out = p.stdout
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    data = re.search(r"traffic: .*, \S+ \((\d+)\) data$", out, re.M)
    assert req and codes and data, (p.returncode, out, p.stderr[-2000:])
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    res = dict(zip(keys, map(int, req.groups())))
    res["2xx"] = int(codes.group(1))
    res["data"] = int(data.group(1))
    res["summary"] = req.group(0)
    return res


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _open_data_files(srv):
    """Descriptors Apache's processes hold on the served files."""
    found = []
    for pid in _children(srv.proc.pid) + [srv.proc.pid]:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith(srv.ws.data):
                found.append((pid, fd, target))
    return found


@pytest.mark.parametrize("proto", ["h2", "h2c"])
@pytest.mark.parametrize("mode", ["e", "d"])
def test_h2load_every_file_wrapper_response_complete(srv, proto, mode):
    """1,000 requests for the 1 MiB file_wrapper, 10 connections with 10
    streams each: every one must complete with all its bytes. Not a
    timing test. Unfixed (the bucket on the app's descriptor), embedded
    mode completed 0-2 of 1,000."""
    mark = srv.log_mark()
    n = 1000
    res = h2load(base_url(srv, proto) + "/%s/file-big" % mode, n=n)
    assert (res["succeeded"], res["failed"], res["errored"], res["timeout"]) == (n, 0, 0, 0), res
    assert res["2xx"] == n, res
    assert res["data"] == n * BIG, res
    assert_clean(srv, mark)
    # Every descriptor of the file is closed once the responses are done:
    # the app's (its close()) and Apache's own (the request's pool).
    left = harness.wait_for(lambda: not _open_data_files(srv), timeout=5)
    assert left, _open_data_files(srv)


# ---- prefork: mod_http2 half works ---------------------------------------------------

def test_prefork_h2_inactive_h2c_direct_still_served(workspace):
    """Under prefork mod_http2 warns that HTTP/2 is inactive (AH10034) and
    TLS clients get HTTP/1.1 from ALPN; but prior-knowledge h2c is still
    served, each stream on a thread of mod_http2's own inside the prefork
    child. Both must deliver every byte."""
    if "prefork" not in _WANTED:
        pytest.skip("prefork not selected")
    s = h2_server(workspace, "prefork", "h2prefork")
    try:
        s.start()
        assert "AH10034" in s.error_log()
        want = EXPECTED["/file-big"][0]
        for mode in "ed":
            r = curl(s, "h2", "/%s/file-big" % mode)
            assert r.rc == 0 and r.status == 200 and r.version == "1.1", r
            assert r.body == want
            r = curl(s, "h2c", "/%s/file-big" % mode)
            assert r.rc == 0 and r.status == 200 and r.version == "2", r
            assert r.body == want
        # Those h2c streams run on mod_http2's threads in the prefork child,
        # so the embedded app may be called by two threads at once.
        r = curl(s, "h2c", "/e/multithread")
        assert (r.status, r.body) == (200, b"True"), r
        assert not CRASH_RE.search(s.error_log())
    finally:
        s.stop()


# ---- a descriptor that cannot be duplicated: 500 and one entry ------------------------

def test_file_wrapper_dup_failure_is_500_with_one_entry(short_server, workspace):
    """The app lowers its descriptor limit so that no descriptor is free
    when Apache takes its own copy of the file's; the request must end
    with a 500 and one log entry, and the process must keep serving."""
    _write_data(workspace)
    s = short_server("h2emfile", mpm="event",
                     extra="WSGIScriptAlias /e @APPS@/h2.wsgi\n")
    s.start()
    mark = s.log_mark()
    r = s.get("/e/file-emfile")
    assert r.status == 500, r
    entries = s.wait_log_entries(mark, 1)
    assert len(entries) == 1, entries
    assert "descriptor" in s.log_since(mark) and "Too many open files" in s.log_since(mark)
    ok = s.get("/e/file-big")
    assert ok.status == 200 and ok.body == EXPECTED["/file-big"][0]
    assert not CRASH_RE.search(s.error_log())
