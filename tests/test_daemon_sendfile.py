"""wsgi.file_wrapper in daemon mode: a regular file's open descriptor
crosses the relay's UNIX socket (SCM_RIGHTS, a P frame) and the Apache
child sends the file itself, as embedded mode does; anything else (a pipe,
a BytesIO) is read and relayed in frames. Every test runs a real Apache
with the real module on each MPM."""

import http.client
import os
import socket
import threading
import time

import pytest

from harness import wait_for
from test_daemon import cmdline, descendants, no_crash

APP = "@APPS@/daemon_sendfile.wsgi"
SIZE = 5 << 20


def conf(opts="processes=1 threads=4", sendfile="On"):
    return (
        "EnableSendfile %s\n"
        "WSGIDaemonProcess sf display-name=%%{GROUP} %s\n"
        "WSGIScriptAlias /sf %s process-group=sf\n"
        "WSGIScriptAlias /esf %s\n" % (sendfile, opts, APP, APP))


def daemon_pids(srv):
    return sorted(p for p in descendants(srv.proc.pid)
                  if cmdline(p).startswith("(wsgi:sf)"))


def child_pids(srv):
    return sorted(p for p in descendants(srv.proc.pid)
                  if not cmdline(p).startswith("(wsgi:"))


def start(short_server, mpm, **kw):
    srv = short_server("dsendfile", mpm=mpm, extra=conf(**kw))
    srv.start()
    wait_for(lambda: len(daemon_pids(srv)) >= 1, timeout=15)
    return srv


@pytest.fixture(scope="module")
def blob(workspace):
    # In the workspace: the daemon (www-data) must be able to open it.
    path = os.path.join(workspace.root, "dsendfile-blob.bin")
    data = os.urandom(SIZE)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return path, data


def fds(pid):
    """pid's open descriptors: {fd: target}; {} when it is gone."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            out[int(n)] = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            pass
    return out


def open_on(srv, path):
    """{pid: number of descriptors on path} over Apache's children and
    the daemons."""
    return {pid: sum(1 for t in fds(pid).values() if t == path)
            for pid in child_pids(srv) + daemon_pids(srv)}


def fd_counts(srv):
    return {pid: len(fds(pid)) for pid in child_pids(srv) + daemon_pids(srv)}


def io_counter(pid, name):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, v = line.split(":")
            if k == name:
                return int(v)
    raise KeyError(name)


def get(srv, path, method="GET", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_file_crosses_as_a_descriptor(short_server, mpm, blob):
    path, data = blob
    srv = start(short_server, mpm)
    (dpid,) = daemon_pids(srv)
    st, h, body = get(srv, "/sf/regular?path=" + path)  # warm: the app loads
    assert st == 200 and body == data
    # What the daemon writes (wchar counts socket writes too) for a 5 MB
    # download: the frames, not the file.
    before = io_counter(dpid, "wchar")
    st, h, body = get(srv, "/sf/regular?path=" + path)
    written = io_counter(dpid, "wchar") - before
    assert st == 200 and body == data, (st, len(body))
    assert h["Content-Length"] == str(SIZE)
    assert written < 64 * 1024, "the daemon relayed %d bytes" % written
    # Sent as a file bucket by the child: HEAD, a position, a short
    # Content-Length, bytes written before the file.
    st, h, body = get(srv, "/sf/regular?path=" + path, method="HEAD")
    assert st == 200 and body == b"" and h["Content-Length"] == str(SIZE)
    st, h, body = get(srv, "/sf/regular?skip=1000&path=" + path)
    assert st == 200 and body == data[1000:]
    assert h["Content-Length"] == str(SIZE - 1000)
    st, h, body = get(srv, "/sf/regular?cl=12345&path=" + path)
    assert st == 200 and body == data[:12345] and h["Content-Length"] == "12345"
    st, h, body = get(srv, "/sf/regular?skip=7&cl=3000000&path=" + path)
    assert st == 200 and body == data[7:3000007]
    # A Range request: the whole response reaches Apache's byterange
    # filter in one brigade, as in embedded mode.
    st, h, body = get(srv, "/sf/regular?path=" + path,
                      headers={"Range": "bytes=10-19,-5"})
    assert st == 206, (st, len(body))
    assert data[10:20] in body and data[-5:] in body and len(body) < 1000
    st, h, body = get(srv, "/sf/regular?path=" + path,
                      headers={"Range": "bytes=100-"})
    assert st == 206 and body == data[100:]
    assert h["Content-Range"] == "bytes 100-%d/%d" % (SIZE - 1, SIZE)
    # Frames before the file reach the client before it.
    st, h, body = get(srv, "/sf/regular?pre=hello-first&path=" + path)
    assert st == 200 and body == b"hello-first" + data
    # None of these went through the daemon's socket either.
    assert io_counter(dpid, "wchar") - before < 6 * 64 * 1024
    no_crash(srv)


def test_without_enable_sendfile(short_server, mpm, blob):
    # EnableSendfile Off (Apache's default): the child reads the file
    # bucket itself (mmap or read).
    path, data = blob
    srv = start(short_server, mpm, sendfile="Off")
    st, h, body = get(srv, "/sf/regular?skip=5&path=" + path)
    assert st == 200 and body == data[5:]
    # And embedded mode, for the same answers.
    st, h, ebody = get(srv, "/esf/regular?skip=5&path=" + path)
    assert st == 200 and ebody == body


def test_not_a_regular_file_is_relayed(short_server, mpm):
    srv = start(short_server, mpm)
    want = (b"0123456789abcdef" * (300000 // 16 + 1))[:300000]
    for kind in ("pipe", "bytesio"):
        st, h, body = get(srv, "/sf/%s?n=300000" % kind)
        assert st == 200 and body == want, (kind, st, len(body))
    no_crash(srv)


def _download(srv, path, n, errors):
    for _ in range(n):
        try:
            st, h, body = get(srv, path)
            if st != 200 or len(body) != SIZE:
                errors.append((st, len(body)))
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(repr(e))


def _cut_download(srv, path):
    """Reads the headers and a little body, then drops the connection."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        got = b""
        while len(got) < 20000:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")
    finally:
        # RST, not FIN: the child's next write fails at once.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()


def test_no_descriptor_leaks(short_server, mpm, blob):
    path, data = blob
    srv = start(short_server, mpm)
    url = "/sf/regular?path=" + path
    # Warm: the app is loaded, each child has pooled a relay connection.
    errors = []
    threads = [threading.Thread(target=_download, args=(srv, url, 5, errors))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    wait_for(lambda: srv.open_connections() == 0, timeout=10)
    assert not any(open_on(srv, path).values())
    before = fd_counts(srv)
    threads = [threading.Thread(target=_download, args=(srv, url, 50, errors))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:5]
    for _ in range(20):
        _cut_download(srv, url)
    # Every descriptor on the file is closed once its response is over,
    # cut or not, in the children and in the daemon.
    assert wait_for(lambda: not any(open_on(srv, path).values()), timeout=10), \
        open_on(srv, path)
    wait_for(lambda: srv.open_connections() == 0, timeout=10)
    after = fd_counts(srv)
    # The pools may have grown by a relay connection or two; a leak of
    # one descriptor per download would be hundreds.
    # (prefork may have started a child meanwhile: only the processes
    # that were there before are compared.)
    grown = {pid: after[pid] - before[pid] for pid in after if pid in before}
    assert sum(grown.values()) <= 2 * 8, (before, after)
    no_crash(srv)


def test_descriptor_that_cannot_arrive_is_a_502(short_server, mpm, blob):
    """A child that can open no more descriptors gets the P frame with
    MSG_CTRUNC: a 502 and an entry naming it, not a hang or a cut."""
    path, data = blob
    srv = start(short_server, mpm)
    url = "/sf/regular?path=" + path
    # One keep-alive connection: one Apache child serves all of it.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("GET", url)  # the child pools a relay connection
        r = conn.getresponse()
        assert r.status == 200 and r.read() == data
        # That child's own soft RLIMIT_NOFILE (an embedded app in it lowers
        # it): the descriptor the daemon sends next cannot be installed.
        conn.request("GET", "/esf/nofile?do=exhaust")
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
        mark = srv.log_mark()
        conn.request("GET", url)
        r = conn.getresponse()
        body = r.read()
        status = r.status
        if not r.will_close:
            conn.request("GET", "/esf/nofile?do=restore")
            r = conn.getresponse()
            assert r.read() == b"restored"
        assert status == 502, (status, len(body))
        log = srv.log_since(mark)
        assert "PYH0064" in log and "MSG_CTRUNC" in log, log[-3000:]
    finally:
        conn.close()
    # The daemon and the other children go on serving.
    for _ in range(3):
        st, h, body = get(srv, url)
        assert st == 200 and body == data
    no_crash(srv)
