"""ASGI and a client that goes away (issue 13 point 4): while the app
waits or streams, the worker notices within a second; receive() then
returns http.disconnect and send() raises an OSError subclass; aborted
streams leave no growth behind. Raw ASGI app: tests/apps/asgi_disconnect.py."""

import json
import os
import socket
import time

import pytest

import harness

CONF = "ASGIScriptAlias /d @APPS@/asgi_disconnect.py\n"


_MPMS = (harness.MPMS if not os.environ.get("PYHOST_TEST_MPMS")
         else [m for m in os.environ["PYHOST_TEST_MPMS"].split(",") if m in harness.MPMS])


# Embedded, and in a daemon process group (issue 14 point 4): there the
# Apache child notices the client and closes the relay connection, and
# the daemon's worker notices that.
@pytest.fixture(scope="module", params=[(m, mode) for m in _MPMS
                                        for mode in ("embedded", "daemon")],
                ids=lambda p: "%s-%s" % p)
def srv(request, workspace):
    mpm, mode = request.param
    # A fixed set of children, so that the RSS measured before and after
    # is that of the processes that served the aborted streams.
    spare = ("MinSpareServers 1\nMaxSpareServers 64\n" if mpm == "prefork"
             else "MinSpareThreads 1\nMaxSpareThreads 64\n")
    daemon = ("WSGIDaemonProcess discd threads=4\nWSGIProcessGroup discd\n"
              if mode == "daemon" else "")
    s = harness.Apache(workspace, "asgi-disc-%s-%s" % (mpm, mode), mpm=mpm,
                       extra=daemon + CONF + spare)
    s.start()
    if mode == "daemon":  # its "ready" entry is logged before any test's mark
        assert s.get("/d/pid").status == 200
    yield s
    s.stop()


def marker(workspace, token, timeout=5.0):
    path = os.path.join(workspace.state, "disc-" + token)
    harness.wait_for(lambda: os.path.exists(path), timeout=timeout, interval=0.02)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def test_receive_returns_disconnect_within_a_second(srv, workspace, token):
    mark = srv.log_mark()
    s = srv.open_socket()
    s.sendall(b"POST /d/wait?" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 5\r\n\r\nhello")
    time.sleep(0.5)  # the app is waiting in receive()
    assert marker(workspace, token, timeout=0.1) is None, "receive() returned early"
    closed = time.time()
    s.close()
    seen = marker(workspace, token)
    assert seen is not None, "the app's receive() never returned:\n" + srv.log_since(mark)
    assert seen["got"] == "http.disconnect"
    assert seen["at"] - closed < 1.0, seen["at"] - closed
    text = srv.log_since(mark)
    assert not harness.CRASH_RE.search(text), text
    # Not the app's fault: nothing logged.
    assert not srv.log_entries_since(mark), text


def test_send_raises_oserror_when_the_client_leaves_a_stream(srv, workspace, token):
    mark = srv.log_mark()
    s = srv.open_socket()
    s.sendall(b"GET /d/stream?" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"xxxx" not in got:
        got += s.recv(65536)
    # Closed with unread data: the kernel resets the connection.
    closed = time.time()
    s.close()
    seen = marker(workspace, token)
    assert seen is not None, srv.log_since(mark)
    assert seen["error"] == "ClientDisconnected" and seen["oserror"], seen
    assert seen["at"] - closed < 1.0, seen["at"] - closed
    assert 0 < seen["sent"] < 100, seen
    time.sleep(0.3)
    text = srv.log_since(mark)
    assert not harness.CRASH_RE.search(text), text
    assert not srv.log_entries_since(mark), text


def test_receive_asked_while_the_response_completes_is_answered(srv, workspace, token):
    # The READ reaches the worker while it writes the final body (the
    # client reads nothing for a second): the worker must answer it as it
    # leaves, not leave the app's receive() waiting for ever (and its
    # request object alive).
    mark = srv.log_mark()
    s = srv.open_socket(timeout=20)
    s.sendall(b"POST /d/early?" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
    time.sleep(1.0)
    data = harness.read_until_close(s, timeout=20)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    # Embedded, the one final body goes out with its length; from a
    # daemon, every ASGI response is relayed chunked.
    if b"transfer-encoding: chunked" in head.lower():
        body = harness.dechunk(body)
    assert len(body) == 64 << 20 and body.endswith(b"e" * 1000), data[:200]
    seen = marker(workspace, token, timeout=8)
    assert seen is not None, srv.log_since(mark)
    assert seen["got"] == "http.disconnect", seen
    text = srv.log_since(mark)
    assert not harness.CRASH_RE.search(text), text
    assert not srv.log_entries_since(mark), text


def _child_pids(srv):
    """Apache's children: processes whose parent is the main httpd."""
    main = srv.proc.pid
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == main:
                        pids.append(int(pid))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def _rss_kb(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _aborted_streams(srv, n):
    for _ in range(n):
        s = srv.open_socket()
        s.sendall(b"GET /d/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"xxxx" not in got:
            chunk = s.recv(65536)
            assert chunk, "connection closed before the first chunk:\n" + srv.error_log()[-3000:]
            got += chunk
        s.close()
        # The app notices at its next send, within a few ms: one aborted
        # stream at a time, as the fixed set of children can serve them.
        time.sleep(0.01)


@pytest.mark.skipif(harness.UNDER_ASAN, reason="RSS under ASan holds its quarantine")
def test_aborted_streams_leave_no_growth(srv):
    mark = srv.log_mark()
    _aborted_streams(srv, 100)  # warm up: every child and thread used
    time.sleep(1.0)
    pids = _child_pids(srv)
    before = _rss_kb(pids)
    _aborted_streams(srv, 500)
    time.sleep(1.0)
    assert _child_pids(srv) == pids, "children were replaced: " + srv.log_since(mark)[-3000:]
    after = _rss_kb(pids)
    print("RSS of %d children: %d kB before, %d kB after 500 aborted streams" % (
        len(pids), before, after))
    assert after - before < 4096, (before, after)
    text = srv.log_since(mark)
    assert not harness.CRASH_RE.search(text), text
    assert not srv.log_entries_since(mark), text[-3000:]
    r = srv.get("/d/pid")
    assert r.status == 200
