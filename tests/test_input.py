"""wsgi.input: every reading style, Content-Length, chunked request bodies
(WSGIChunkedRequest) and when `100 Continue` is sent."""

import hashlib
import json
import os

import pytest

from harness import RawResponse, read_until, read_until_close

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
    # Apache notices only while the app reads: 413, or a 500 from the app's
    # read error with one entry; never a 200 with a truncated body.
    assert r.status in (413, 500), r
    if r.status == 500:
        assert len(server.wait_log_entries(mark, count=1, timeout=2)) == 1
    assert server.get("/bad/ok").status == 200
