"""wsgi.input: every reading style, Content-Length, chunked request bodies
(WSGIChunkedRequest) and when `100 Continue` is sent."""

import hashlib
import json
import os
import socket
import time

import pytest

from conftest import _selected_mpms
from harness import CRASH_RE, Apache, RawResponse, read_until, read_until_close

BODY = b"line one\nline two is longer\n\nfourth\nno newline at end"


def post_input(server, mode, body=BODY, **kw):
    r = server.post("/input?" + mode, body, **kw)
    assert r.status == 200, r
    return r.json()


def joined(result):
    return "".join(result["chunks"]).encode("latin-1")


@pytest.mark.parametrize("mode", ["read", "readn", "readline", "readline5", "readlines",
                                  "iter", "mixed"])
def test_reading_styles_return_the_whole_body(server, mode):
    res = post_input(server, mode)
    assert res["types"] == ["bytes"]
    assert joined(res) == BODY
    assert res["content_length"] == str(len(BODY))


def test_readline_splits_on_newlines(server):
    res = post_input(server, "readline")
    assert [c.encode("latin-1") for c in res["chunks"]] == BODY.splitlines(keepends=True)


def test_readline_with_size_limit(server):
    res = post_input(server, "readline5")
    chunks = [c.encode("latin-1") for c in res["chunks"]]
    assert all(len(c) <= 5 for c in chunks)
    assert all(c.endswith(b"\n") or len(c) == 5 for c in chunks[:-1])
    assert b"".join(chunks) == BODY


def test_readlines_and_iteration_give_lines(server):
    expected = BODY.splitlines(keepends=True)
    assert [c.encode("latin-1") for c in post_input(server, "readlines")["chunks"]] == expected
    assert [c.encode("latin-1") for c in post_input(server, "iter")["chunks"]] == expected


def test_readlines_hint_stops_early(server):
    res = post_input(server, "readlines_hint")
    chunks = [c.encode("latin-1") for c in res["chunks"]]
    sep = chunks.index(b"|REST|")
    first, rest = chunks[:sep], chunks[sep + 1:]
    assert first, "readlines(10) returned nothing"
    assert all(c.endswith(b"\n") for c in first)
    assert sum(len(c) for c in first) >= 10
    assert b"".join(first) + b"".join(rest) == BODY
    assert rest and rest[0], "readlines(10) consumed the whole body"


def test_read_after_eof_returns_empty(server):
    res = post_input(server, "read_twice")
    assert [c.encode("latin-1") for c in res["chunks"]] == [BODY, b"", b""]


def test_get_without_body_reads_empty(server):
    r = server.get("/input?read")
    assert r.status == 200
    assert r.json()["chunks"] == [""]


def test_large_body(server):
    body = os.urandom(3 * 1024 * 1024 + 17)
    for mode in ("read", "readbig"):
        res = post_input(server, mode, body=body, timeout=60)
        got = joined(res)
        assert len(got) == len(body)
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_content_length_is_honoured(server):
    # Bytes past Content-Length are not part of this request's body.
    r = server.raw(b"POST /input?read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                   b"Connection: close\r\n\r\nhelloEXTRA-NOT-BODY")
    assert r.status == 200, r
    assert json.loads(r.body)["chunks"] == ["hello"]


def test_app_may_leave_body_unread(server):
    r = server.post("/noread", b"x" * 100000)
    assert r.status == 200
    assert r.body == b"did not read"
    assert server.get("/noread").status == 200


def chunked_body(parts):
    for p in parts:
        yield p


def test_chunked_request_refused_by_default(server):
    r = server.request("POST", "/input?read", body=chunked_body([b"abc", b"def"]),
                       encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    assert r.status == 411


def test_chunked_request_accepted_when_on(server):
    parts = [b"abc", b"defgh\n", b"x" * 70000, b"end"]
    for mode in ("read", "readn", "readline", "iter"):
        r = server.request("POST", "/chunked?" + mode, body=chunked_body(parts),
                           encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        assert r.status == 200, (mode, r)
        res = r.json()
        assert joined(res) == b"".join(parts), mode
        assert res["input_terminated"] is True
        assert res["content_length"] in (None, "")


def test_chunked_empty_body(server):
    r = server.raw(b"POST /chunked?read HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
    assert r.status == 200, r
    assert json.loads(r.body)["chunks"] == [""]


def expect_headers(path, length):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
            b"Content-Type: application/octet-stream\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n" % (path.encode(), length))


def test_100_continue_sent_when_app_reads(server):
    with server.open_socket() as s:
        s.sendall(expect_headers("/input?read", 5))
        data, found = read_until(s, b"\r\n\r\n", timeout=5)
        assert found, "no 100 Continue (or any response) within 5s: %r" % data
        assert data.startswith(b"HTTP/1.1 100"), data
        s.sendall(b"hello")
        rest = read_until_close(s, 10)
    r = RawResponse(data + rest)
    assert r.interim and r.interim[0].startswith("HTTP/1.1 100")
    assert r.status == 200, r
    assert json.loads(r.body)["chunks"] == ["hello"]


def test_no_100_continue_when_app_does_not_read(server):
    with server.open_socket() as s:
        s.sendall(expect_headers("/noread", 5))
        data, found = read_until(s, b"did not read", timeout=5)
    r = RawResponse(data)
    assert found, "final response not sent without the body: %r" % data
    assert not data.startswith(b"HTTP/1.1 100"), data
    assert r.interim == []
    assert r.status == 200


@pytest.mark.parametrize("mode,expected", [
    ("read_minus1", [BODY]),
    ("readline_minus1", [BODY.split(b"\n")[0] + b"\n", BODY[BODY.index(b"\n") + 1:]]),
    ("read_zero", [b"", BODY]),
])
def test_negative_and_zero_sizes(server, mode, expected):
    res = post_input(server, mode)
    assert [c.encode("latin-1") for c in res["chunks"]] == expected


def test_body_arriving_slowly(server):
    import time
    parts = [b"slow-part-one;", b"slow-part-two;", b"slow-part-three"]
    total = sum(map(len, parts))
    with server.open_socket() as s:
        s.sendall(b"POST /input?read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % total)
        for p in parts:
            time.sleep(0.3)
            s.sendall(p)
        data = read_until_close(s, 10)
    r = RawResponse(data)
    assert r.status == 200, r
    assert json.loads(r.body)["chunks"] == [b"".join(parts).decode()]


def test_client_abort_mid_body(server):
    # The client promises 100000 bytes, sends 10, and hangs up: the app's
    # read fails, the request ends, the server keeps serving.
    import time
    mark = server.log_mark()
    with server.open_socket() as s:
        s.sendall(b"POST /input?read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                  b"0123456789")
        time.sleep(0.2)
    time.sleep(0.5)
    assert server.get("/bad/ok").status == 200
    log = server.log_since(mark)
    assert "exit signal" not in log and "Segmentation fault" not in log
    # At most one entry for the aborted request (the app's read error).
    assert len(server.log_entries_since(mark)) <= 1, server.log_entries_since(mark)


def test_latin1_request_header_value(server):
    r = server.raw(b"GET /env HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n"
                   b"Connection: close\r\n\r\n")
    assert r.status == 200, r
    e = json.loads(r.body)
    assert e["HTTP_X_LATIN"] == "caf\u00e9"


@pytest.mark.parametrize("mode", ["read_huge", "readline_huge"])
def test_huge_read_size_is_not_preallocated(server, mode):
    res = post_input(server, mode)
    assert joined(res) == BODY
    r = server.request("POST", "/chunked?" + mode, body=iter([b"abc\n", b"def"]),
                       encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    assert r.status == 200, r
    assert joined(r.json()) == b"abc\ndef"


def test_very_long_line(server):
    body = b"y" * (2 * 1024 * 1024) + b"\nshort\n"
    res = post_input(server, "readline", body=body, timeout=60)
    chunks = [c.encode("latin-1") for c in res["chunks"]]
    assert [len(c) for c in chunks] == [2 * 1024 * 1024 + 1, 6]


def test_limit_request_body_with_content_length(server):
    assert server.post("/limited?read", b"a" * 1000).status == 200
    mark = server.log_mark()
    r = server.post("/limited?read", b"a" * 5000)
    assert r.status == 413, r
    assert server.get("/bad/ok").status == 200
    assert "exit signal" not in server.log_since(mark)


def test_limit_request_body_chunked(server):
    mark = server.log_mark()
    r = server.request("POST", "/limited?readn", body=iter([b"b" * 800, b"b" * 800]),
                       encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    # Apache notices only while the app reads, and answers 413 itself; the
    # app's read error (one entry) adds nothing to that answer.
    assert r.status == 413, r
    assert r.body.count(b"<html>") == 1, r  # Apache's page, nothing after it
    assert len(server.wait_log_entries(mark, count=1, timeout=2)) == 1
    assert server.get("/bad/ok").status == 200


# --- false and broken body claims (issue 12) ------------------------------
# One server per MPM with Timeout 3, the app in embedded and daemon mode.
# body_claims.wsgi catches its read error and answers 200, as frameworks do.

CLAIMS_CONF = r"""
Timeout 3
WSGIDaemonProcess claims processes=1 threads=4
WSGIScriptAlias /claims/embedded @APPS@/body_claims.wsgi
WSGIScriptAlias /claims/daemon @APPS@/body_claims.wsgi process-group=claims
WSGIScriptAlias /claims/unlimited/embedded @APPS@/body_claims.wsgi
WSGIScriptAlias /claims/unlimited/daemon @APPS@/body_claims.wsgi process-group=claims
<LocationMatch "^/claims/unlimited/">
    LimitRequestBody 0
</LocationMatch>
WSGIScriptAlias /claims/chunked/embedded @APPS@/body_claims.wsgi
WSGIScriptAlias /claims/chunked/daemon @APPS@/body_claims.wsgi process-group=claims
<LocationMatch "^/claims/chunked/">
    WSGIChunkedRequest On
    LimitRequestBody 5
</LocationMatch>
"""

MODES = ["embedded", "daemon"]


@pytest.fixture(scope="module", params=_selected_mpms())
def claims_server(request, workspace):
    srv = Apache(workspace, "claims-" + request.param, mpm=request.param,
                 extra=CLAIMS_CONF)
    srv.start()
    yield srv
    srv.stop()


def claims_request(srv, path, headers, body, half_close=False, timeout=15):
    """Sends one request and leaves the connection open (unless
    half_close): (seconds until a Content-Length response was all in, or
    until the server closed, the RawResponse, whether the server closed
    the connection within 1 s of the response)."""
    with srv.open_socket(timeout) as s:
        start = time.time()
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\n%s\r\n%s" % (path.encode(), headers, body))
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data, elapsed, closed = b"", None, False
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            data += chunk
            r = RawResponse(data)
            if elapsed is None and r.complete and r.header("Content-Length") is not None:
                elapsed = time.time() - start
                s.settimeout(1.0)  # now: does the server close the connection?
    if elapsed is None:
        elapsed = time.time() - start
    return elapsed, RawResponse(data), closed


@pytest.mark.parametrize("mode", MODES)
def test_short_body_frees_the_worker_after_one_timeout(claims_server, mode):
    # Content-Length 100, 3 bytes sent, the connection left open: the
    # app's read fails after Timeout (3 s) and it answers 200. Apache must
    # not wait a second Timeout to discard the rest of the body (that took
    # 6 s and kept the connection alive): answer by ~3 s, Connection: close.
    elapsed, r, closed = claims_request(claims_server, "/claims/%s?read" % mode,
                                        b"Content-Length: 100\r\n", b"abc")
    assert r.complete and r.status == 200, r
    assert "OSError" in json.loads(r.body)["error"]
    assert 2.5 < elapsed < 5.0, elapsed
    assert (r.header("Connection") or "").lower() == "close", r
    assert closed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("coding", [b"gzip, chunked", b"identity, chunked",
                                    b"chunked, chunked"])
def test_transfer_codings_other_than_chunked_get_501(claims_server, mode, coding):
    mark = claims_server.log_mark()
    body = b"3\r\nabc\r\n0\r\n\r\n"
    for path in ("/claims/chunked/%s" % mode, "/claims/%s" % mode):
        r = claims_server.raw(b"POST %s?read HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: %s\r\nConnection: close\r\n\r\n%s"
                              % (path.encode(), coding, body))
        # before the app runs: its 200 would say what it read
        assert r.status == 501, r
    entries = claims_server.log_entries_since(mark)
    assert len(entries) <= 2 and all("PYH0080" in e for e in entries), entries


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["read", "readn", "readn_big", "readline", "iter"])
@pytest.mark.parametrize("length", [b"9223372036854775807", b"1099511627776"])
def test_content_length_over_the_limit_is_413_before_the_app(claims_server, mode, how,
                                                              length):
    # LimitRequestBody is Apache's default (1 GiB): refused up front, as
    # mod_wsgi does, instead of the app's read() sizing a buffer from it.
    elapsed, r, closed = claims_request(claims_server, "/claims/%s?%s" % (mode, how),
                                        b"Content-Length: %s\r\n" % length, b"abc\ndef",
                                        half_close=True)
    assert r.status == 413, r
    assert b"{" not in r.body, r  # nothing of the app's answer
    assert closed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how,got", [("readn", ["abc\ndef\ngh"]), ("readline", ["abc\n"]),
                                     ("iter", ["abc\n"]), ("read", None),
                                     ("readn_big", None)])
@pytest.mark.parametrize("length", [b"9223372036854775807", b"1099511627776"])
def test_huge_content_length_allocates_only_what_arrives(claims_server, mode, how, got,
                                                         length):
    # No limit: the app reads a body that claims 2^63-1 (or 2^40) bytes and
    # brings 19. Sized reads and lines come back; reads to the end fail
    # with the client's half-close (an OSError), never OverflowError or
    # MemoryError from a buffer sized by the claim.
    elapsed, r, closed = claims_request(claims_server,
                                        "/claims/unlimited/%s?%s" % (mode, how),
                                        b"Content-Length: %s\r\n" % length,
                                        b"abc\ndef\nghijklmnop", half_close=True)
    assert r.status == 200, r
    res = json.loads(r.body)
    if got is not None:
        assert res["error"] is None and res["got"] == got, res
    else:
        assert res["error"].startswith("OSError"), res
    assert elapsed < 2.5, elapsed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["read", "readn_big"])
def test_content_length_under_the_limit_is_not_allocated_up_front(claims_server, mode, how):
    # 1 GiB - 1 passes the default LimitRequestBody; 19 bytes arrive. The
    # read must not reserve the claim (tracemalloc sees a 1 GiB buffer even
    # though its pages are never touched).
    elapsed, r, closed = claims_request(claims_server, "/claims/%s?%s" % (mode, how),
                                        b"Content-Length: 1073741823\r\n",
                                        b"abc\ndef\nghijklmnop", half_close=True)
    assert r.status == 200, r
    res = json.loads(r.body)
    assert res["error"].startswith("OSError"), res
    assert res["read_peak_bytes"] < 16 * 1024 * 1024, res


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("body", [b"zz\r\nabc\r\n0\r\n\r\n",               # bad chunk size
                                  b"3\r\nabc\r\n3\r\nabc\r\n0\r\n\r\n"])  # over the limit
def test_apache_answers_a_bad_chunked_body_alone(claims_server, mode, body):
    # Apache's HTTP_IN filter sends its own 400/413 while the app reads;
    # the app catches the error and answers: that answer must not follow
    # Apache's error page on the wire.
    mark = claims_server.log_mark()
    data = claims_server.raw(b"POST /claims/chunked/%s?read HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n%s" % (mode.encode(), body))
    assert data.status in (400, 413), data
    assert data.body.count(b"<html>") == 1 and data.body.rstrip().endswith(b"</html>"), data
    assert b"{" not in data.body, data
    assert not CRASH_RE.search(claims_server.log_since(mark))
