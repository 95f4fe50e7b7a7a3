"""ASGI in daemon process groups (issue 14 points 4 and 6): what the
embedded scenarios (test_asgi.py, test_asgi_disconnect.py, run there in a
daemon too) do not cover: where the mount is placed, lifespan at daemon
start, stop and recycle, and the daemon's timeouts applied to ASGI
requests. Raw ASGI app: tests/apps/asgi_daemon.py."""

import time

import pytest

import harness
from harness import RawResponse, read_until, read_until_close

APP = "@APPS@/asgi_daemon.py"


def lifespan_log(workspace):
    try:
        with open(workspace.state_path("asgi_daemon_lifespan.log")) as f:
            return f.read().splitlines()
    except OSError:
        return []


def test_inline_process_group_serves_in_the_daemon(short_server, mpm, workspace):
    srv = short_server("dasgi-inline", mpm=mpm, extra=(
        "WSGIDaemonProcess dg threads=4\n"
        "ASGIScriptAlias /x %s process-group=dg\n"
        "ASGIScriptAlias /e %s\n" % (APP, APP)))
    srv.start()
    d = srv.get("/x/pid").json()
    e = srv.get("/e/pid").json()
    assert d["pid"] != e["pid"]
    # lifespan ran in the daemon before it served its first request, and
    # the embedded mount's own in the child: each process started its own
    assert d["started"] and e["started"]
    assert "PYH0220" not in srv.error_log()


def test_lifespan_before_serving_and_shutdown_at_stop(short_server, mpm, workspace):
    srv = short_server("dasgi-life", mpm=mpm, extra=(
        "WSGIDaemonProcess dg processes=2 threads=4\n"
        "WSGIProcessGroup dg\n"
        "ASGIScriptAlias /x %s\n" % APP))
    before = len(lifespan_log(workspace))  # the log is the module's
    srv.start()
    # each process runs lifespan startup as it starts, before any request
    assert harness.wait_for(lambda: sum(l.startswith("startup ") for l in
                                        lifespan_log(workspace)[before:]) == 2,
                            timeout=20), lifespan_log(workspace)[before:]
    pids = set()
    for _ in range(12):
        d = srv.get("/x/pid").json()
        assert d["started"], "served before its lifespan startup ended"
        pids.add(d["pid"])
    srv.stop()
    lines = lifespan_log(workspace)
    for pid in pids:
        assert lines.count("startup %d" % pid) == 1, lines
        assert lines.count("shutdown %d" % pid) == 1, lines


def test_lifespan_shutdown_at_recycle(short_server, workspace):
    srv = short_server("dasgi-recycle", extra=(
        "WSGIDaemonProcess dg threads=2 maximum-requests=3\n"
        "WSGIProcessGroup dg\n"
        "ASGIScriptAlias /x %s\n" % APP))
    srv.start()
    first = srv.get("/x/pid").json()["pid"]
    srv.get("/x/pid")
    srv.get("/x/pid")  # the third: the process recycles after it
    assert harness.wait_for(lambda: "shutdown %d" % first in lifespan_log(workspace), timeout=10), \
        srv.error_log()[-3000:]
    d = srv.get("/x/pid").json()
    assert d["pid"] != first and d["started"]


def test_lifespan_startup_failure_is_503_in_the_daemon(short_server):
    srv = short_server("dasgi-lifefail", extra=(
        "WSGIDaemonProcess dg threads=2\n"
        "ASGIScriptAlias /f @APPS@/asgi_lifespan_fail.py process-group=dg\n"
        "ASGIScriptAlias /x %s process-group=dg\n" % APP))
    srv.start()
    assert srv.get("/f/").status == 503
    assert srv.get("/x/pid").status == 200
    assert srv.get("/f/").status == 503
    lines = [l for l in srv.error_log().splitlines() if "PYH0205" in l]
    assert len(lines) == 1 and "database unreachable" in lines[0], lines


def test_request_timeout_before_start_is_504(short_server, mpm):
    srv = short_server("dasgi-rto", mpm=mpm, extra=(
        "WSGIDaemonProcess dg threads=2 request-timeout=1\n"
        "ASGIScriptAlias /x %s process-group=dg\n" % APP))
    srv.start()
    # the daemon's own start (Python, lifespan) may take longer than 1 s
    assert harness.wait_for(lambda: srv.get("/x/pid").status == 200, timeout=20)
    mark = srv.log_mark()
    t0 = time.time()
    r = srv.get("/x/sleep?5")
    assert r.status == 504
    assert time.time() - t0 < 3
    entries = srv.wait_log_entries(mark, 1, settle=1.5)
    assert len(entries) == 1 and "PYH0071" in entries[0], entries
    # the daemon keeps serving, and is not recycled for it
    assert srv.get("/x/pid").status == 200
    assert "PYH0047" not in srv.log_since(mark)


def test_request_timeout_after_start_cuts(short_server, mpm):
    srv = short_server("dasgi-rtocut", mpm=mpm, extra=(
        "WSGIDaemonProcess dg threads=2 request-timeout=1\n"
        "ASGIScriptAlias /x %s process-group=dg\n" % APP))
    srv.start()
    assert harness.wait_for(lambda: srv.get("/x/pid").status == 200, timeout=20)
    pid = srv.get("/x/pid").json()["pid"]
    mark = srv.log_mark()
    s = srv.open_socket()
    s.sendall(b"GET /x/stall?10 HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    data = read_until_close(s, timeout=8)
    took = time.time() - t0
    assert b"first;" in data and b"never" not in data
    assert not data.endswith(b"0\r\n\r\n"), data  # no terminating chunk: cut
    assert took < 4, took
    entries = srv.wait_log_entries(mark, 1, settle=0.5)
    assert len(entries) == 1 and "PYH0260" in entries[0], entries
    d = srv.get("/x/pid").json()
    assert d["pid"] == pid  # served on, no recycle


def test_inactivity_timeout_counts_open_asgi_requests(short_server):
    srv = short_server("dasgi-idle", extra=(
        "LogLevel info\n"
        "WSGIDaemonProcess dg threads=2 inactivity-timeout=1\n"
        "ASGIScriptAlias /x %s process-group=dg\n" % APP))
    srv.start()
    pid = srv.get("/x/pid").json()["pid"]
    mark = srv.log_mark()
    r = srv.get("/x/slow?6", timeout=10)  # 3 s with no request starting or ending
    assert r.status == 200 and r.body.endswith(b"c5;end"), r
    assert "inactivity-timeout reached" not in srv.log_since(mark)
    # ...and idle after it, the process does recycle
    assert harness.wait_for(lambda: "daemon process %d of group 'dg' is recycling: "
                            "inactivity-timeout reached" % pid in srv.log_since(mark), timeout=6)


def test_graceful_recycle_waits_for_asgi_requests(short_server):
    srv = short_server("dasgi-graceful", extra=(
        "LogLevel info\n"
        "WSGIDaemonProcess dg threads=4 maximum-requests=2 graceful-timeout=10\n"
        "ASGIScriptAlias /x %s process-group=dg\n" % APP))
    srv.start()
    s = srv.open_socket()
    s.sendall(b"GET /x/slow?4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, found = read_until(s, b"c0;", timeout=5)
    assert found, head
    assert srv.get("/x/pid").status == 200  # the second request: recycling starts
    assert harness.wait_for(lambda: "PYH0047" in srv.error_log(), timeout=5)
    r = RawResponse(head + read_until_close(s, timeout=10))
    assert r.status == 200 and r.body == b"c0;c1;c2;c3;end", r
    assert "still running" not in srv.error_log()


def test_websocket_to_a_daemon_mount_is_501(short_server):
    srv = short_server("dasgi-ws", extra=(
        "WSGIDaemonProcess dg threads=2\n"
        "ASGIScriptAlias /x %s process-group=dg\n" % APP))
    srv.start()
    assert harness.wait_for(lambda: srv.get("/x/pid").status == 200, timeout=20)
    mark = srv.log_mark()
    r = srv.raw(b"GET /x/pid HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert r.status == 501
    entries = srv.wait_log_entries(mark, 1)
    assert len(entries) == 1 and "PYH0261" in entries[0], entries
