"""The response side of PEP 3333: write(), exc_info, close(), file_wrapper,
HEAD, and generator bodies streamed as they are produced."""

import os
import socket
import time

from harness import RawResponse, Workspace, read_until, read_until_close, wait_for


def test_write_callable_then_iterable(server):
    r = server.get("/out/write")
    assert r.status == 200
    assert r.body == b"one-two-tail"


def test_write_callable_only(server):
    r = server.get("/out/write-only")
    assert r.status == 200
    assert r.body == b"only-written"


def test_empty_chunks_are_skipped(server):
    r = server.get("/out/empty-first")
    assert r.status == 200
    assert r.body == b"after-empty"


def test_custom_status_and_reason(server):
    r = server.get("/out/custom-status")
    assert r.status == 299
    assert r.reason == "Custom Reason"
    assert r.body == b"custom"


def test_repeated_and_latin1_headers(server):
    r = server.raw(b"GET /out/multi-headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    assert b"Set-Cookie: a=1\r\n" in r.raw
    assert b"Set-Cookie: b=2\r\n" in r.raw
    assert b"X-Latin1: caf\xe9\r\n" in r.raw


def test_exc_info_before_headers_replaces_response(server):
    mark = server.log_mark()
    r = server.get("/out/exc-before")
    assert r.status == 503
    assert r.reason == "Handled"
    assert r.body == b"handled"
    assert r.header("X-Second") == "yes"
    assert r.header("X-First") is None
    # The app handled its own error: nothing for the module to report.
    assert server.wait_log_entries(mark, count=1, timeout=0.5) == []


def test_exc_info_after_headers_reraises(server):
    mark = server.log_mark()
    r = server.raw(b"GET /out/exc-after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status in (200, 500), r
    if r.status == 200:
        assert not r.complete, "response should be cut: %r" % r
    assert b"must-not-be-sent" not in r.raw
    entries = server.wait_log_entries(mark)
    assert len(entries) == 1, entries
    assert "pyhost-test-exc-after" in server.log_since(mark)
    assert server.get("/bad/ok").status == 200


def test_head_sends_headers_only(server):
    g = server.get("/out/fixed-length")
    assert g.status == 200 and g.body == b"hello world"
    assert g.header("Content-Length") == "11"
    r = server.raw(b"HEAD /out/fixed-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    assert r.header("Content-Length") == "11"
    head, _, after = r.raw.partition(b"\r\n\r\n")
    assert after == b"", "HEAD response carried a body: %r" % after


def test_file_wrapper_sends_the_file(server):
    expected = Workspace.blob_bytes()
    r = server.get("/out/file-wrapper")
    assert r.status == 200
    assert r.header("Content-Length") == str(len(expected))
    assert len(r.body) == len(expected)
    assert r.body == expected


def test_file_wrapper_without_content_length(server):
    expected = Workspace.blob_bytes()
    r = server.get("/out/file-wrapper-nolength")
    assert r.status == 200
    assert r.body == expected
    cl = r.header("Content-Length")
    assert cl is None or cl == str(len(expected))


def test_file_wrapper_on_non_file(server):
    r = server.get("/out/file-wrapper-bytesio")
    assert r.status == 200
    assert r.body == b"0123456789" * 1000


def test_file_wrapper_head(server):
    r = server.raw(b"HEAD /out/file-wrapper HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    assert r.header("Content-Length") == str(len(Workspace.blob_bytes()))
    assert r.raw.partition(b"\r\n\r\n")[2] == b""


def test_big_iterable_body(server):
    r = server.get("/out/big", timeout=30)
    assert r.status == 200
    assert r.body == b"".join(bytes([i % 256]) * 65536 for i in range(32))


def close_lines(server, token):
    p = server.ws.state_path("close-" + token)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return f.read().splitlines()


def test_close_called_once(server, token):
    r = server.get("/out/closing?" + token)
    assert r.status == 200
    assert r.body == b"x" * 30
    wait_for(lambda: close_lines(server, token), timeout=5)
    time.sleep(0.3)
    assert close_lines(server, token) == ["closed produced=3"]


def test_close_called_once_when_client_disconnects(server, token):
    mark = server.log_mark()
    s = server.open_socket()
    try:
        s.sendall(b"GET /out/closing-slow?%s HTTP/1.1\r\nHost: x\r\n\r\n" % token.encode())
        data, found = read_until(s, b"xxxxxxxx", timeout=5)
        assert found, data
    finally:
        # RST rather than FIN, so that the next write fails promptly.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    lines = wait_for(lambda: close_lines(server, token), timeout=10)
    assert lines, "close() was never called after the client went away"
    time.sleep(0.5)
    lines = close_lines(server, token)
    assert len(lines) == 1, lines
    # Iteration stopped once the client was gone (200 chunks would be ~4 s).
    produced = int(lines[0].split("=")[1])
    assert produced < 200, lines
    # A client going away is not an application error.
    assert not [e for e in server.log_entries_since(mark) if "Traceback" in e]
    assert server.get("/bad/ok").status == 200


def _streaming(server, token, path):
    marker = server.ws.state_path("stream-" + token)
    with server.open_socket() as s:
        s.sendall(b"GET %s?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % (path.encode(), token.encode()))
        data, found = read_until(s, b"first-chunk", timeout=5)
        assert found, ("first chunk not received while the generator was still "
                       "running (response buffered?): %r" % data)
        open(marker, "w").close()
        data += read_until_close(s, timeout=15)
    r = RawResponse(data)
    assert r.status == 200
    assert r.body == b"first-chunk\nsecond-chunk\n", r


def test_generator_body_is_streamed(server, token):
    _streaming(server, token, "/out/stream")


def test_write_is_streamed(server, token):
    _streaming(server, token, "/out/stream-write")


def test_keepalive_connection_serves_many(server):
    conn = server.connection()
    try:
        for i in range(20):
            conn.request("GET", "/out/fixed-length")
            r = conn.getresponse()
            assert r.status == 200
            assert r.read() == b"hello world"
    finally:
        conn.close()


def test_short_body_against_content_length_does_not_hang(server):
    mark = server.log_mark()
    t0 = time.time()
    with server.open_socket() as s:
        s.sendall(b"GET /out/cl-short HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive
        data = read_until_close(s, timeout=10)
    took = time.time() - t0
    r = RawResponse(data)
    # Either caught before the headers went out (an app error: 500, as for
    # any other bad app) or a cut 200 that the client can tell is short.
    assert r.status in (200, 500), r
    if r.status == 200:
        assert not r.complete
        assert r.body == b"short"
    else:
        assert len(server.wait_log_entries(mark, count=1, timeout=2)) == 1
    assert took < 6, "server kept the cut connection open for %.1fs" % took
    assert server.get("/bad/ok").status == 200
    assert len(server.log_entries_since(mark)) <= 1


def test_body_longer_than_content_length_is_truncated(server):
    conn = server.connection()
    try:
        conn.request("GET", "/out/cl-long")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Length") == "5"
        assert r.read() == b"hello"
        # Same connection: the surplus must not be read as the next response.
        conn.request("GET", "/out/fixed-length")
        r2 = conn.getresponse()
        assert r2.status == 200
        assert r2.read() == b"hello world"
    finally:
        conn.close()


def test_empty_body(server):
    r = server.get("/out/empty")
    assert r.status == 200
    assert r.header("X-Empty") == "yes"
    assert r.body == b""


def test_204_has_no_body(server):
    r = server.raw(b"GET /out/no-content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 204, r
    assert r.header("X-No-Content") == "yes"
    assert r.raw.partition(b"\r\n\r\n")[2] == b""


def test_body_read_from_the_generator(server):
    body = os.urandom(200000)
    r = server.post("/out/echo-streaming", body, timeout=30)
    assert r.status == 200
    assert r.body == body


def test_long_and_mixed_case_headers(server):
    r = server.raw(b"GET /out/long-header HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    assert r.header("X-Long") == "v" * 6000
    assert b"\r\nX-CamelCase-Name: kept\r\n" in r.raw


def test_close_called_once_for_head(server, token):
    r = server.raw(b"HEAD /out/closing?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   % token.encode())
    assert r.status == 200, r
    wait_for(lambda: close_lines(server, token), timeout=5)
    time.sleep(0.3)
    assert len(close_lines(server, token)) == 1, close_lines(server, token)


def test_close_called_once_when_iteration_raises(server, token):
    mark = server.log_mark()
    r = server.raw(b"GET /out/closing-raises?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   % token.encode())
    assert r.status in (200, 500), r
    if r.status == 200:
        assert not r.complete
    wait_for(lambda: close_lines(server, token), timeout=5)
    time.sleep(0.3)
    assert close_lines(server, token) == ["closed produced=1"]
    entries = server.wait_log_entries(mark, count=1, timeout=2)
    assert len(entries) == 1, entries
    assert "pyhost-test-boom-closing" in server.log_since(mark)
