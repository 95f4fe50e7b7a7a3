"""ASGI in embedded mode (issue 13, first slice): the directives, the HTTP
scope and messages, streaming, bad apps and lifespan, against a real Apache
on each MPM, with raw ASGI apps under tests/apps/asgi_*."""

import os
import socket
import time

import pytest

import harness
from harness import RawResponse, read_until, read_until_close

ASGI_CONF = r"""
ASGIScriptAlias /a @APPS@/asgi_http.py
ASGIScriptAlias /bad @APPS@/asgi_bad.py
ASGIScriptAlias /neither @APPS@/asgi_neither.py
ASGIScriptAlias /life @APPS@/asgi_lifespan.py lifespan=on
ASGIScriptAlias /life-off @APPS@/asgi_lifespan.py lifespan=off callable-object=application
ASGIScriptAlias /life-fail @APPS@/asgi_lifespan_fail.py
ASGIScriptAliasMatch ^/m/(http|bad) @APPS@/asgi_$1.py
WSGIScriptAlias /w @APPS@/env.wsgi
<Location /a>
    LimitRequestBody 2000000
</Location>
"""


# Every scenario runs embedded and in a daemon process group (issue 14
# point 4): the same apps, the daemon reached over the relay.
DAEMON_CONF = "WSGIDaemonProcess asgid threads=8\nWSGIProcessGroup asgid\n"
MODES = ("embedded", "daemon")
_MPMS = (harness.MPMS if not os.environ.get("PYHOST_TEST_MPMS")
         else [m for m in os.environ["PYHOST_TEST_MPMS"].split(",") if m in harness.MPMS])


@pytest.fixture(scope="module", params=[(m, mode) for m in _MPMS for mode in MODES],
                ids=lambda p: "%s-%s" % p)
def asgi(request, workspace):
    mpm, mode = request.param
    extra = (DAEMON_CONF if mode == "daemon" else "") + ASGI_CONF
    srv = harness.Apache(workspace, "asgi-%s-%s" % (mpm, mode), mpm=mpm, extra=extra)
    srv.mode = mode
    srv.start()
    if mode == "daemon":  # its "ready" entry is logged before any test's mark
        assert srv.get("/a/hello").status == 200
    yield srv
    srv.stop()


def raw(srv, path, method="GET", extra=b""):
    return srv.raw(method.encode() + b" " + path.encode()
                   + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n")


# ---- HTTP ----------------------------------------------------------------------

def test_hello(asgi):
    r = asgi.get("/a/hello")
    assert r.status == 200
    assert r.body == b"Hello, ASGI!"
    assert r.header("Content-Type") == "text/plain"


def test_scope(asgi):
    r = asgi.request("GET", "/a/scope/caf%C3%A9%20x?q=1&r=%20", headers={
        "X-First": "1", "X-Second": "two"})
    assert r.status == 200, r
    s = r.json()
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "GET"
    assert s["scheme"] == "http"
    assert s["path"] == "/a/scope/caf\u00e9 x"          # decoded, with root_path
    assert s["raw_path"] == "/a/scope/caf%C3%A9%20x"     # as sent
    assert s["query_string"] == "q=1&r=%20"
    assert s["root_path"] == "/a"
    names = [k for k, _ in s["headers"]]
    assert names == [n.lower() for n in names]
    assert names.index("x-first") < names.index("x-second")
    assert ["x-second", "two"] in s["headers"]
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert s["server"] == ["127.0.0.1", asgi.port]
    assert s["state"] == {}
    assert s["extensions"] == {"http.response.pathsend": {}, "http.response.zerocopysend": {},
                               "http.response.early_hint": {}}


def test_http10_scope(asgi):
    r = asgi.raw(b"GET /a/scope HTTP/1.0\r\n\r\n")
    assert r.status == 200
    assert b'"http_version": "1.0"' in r.body


def test_regex_mount(asgi):
    assert asgi.get("/m/http/hello").body == b"Hello, ASGI!"
    assert asgi.get("/m/bad/ok").body == b"fine"


def test_request_body_in_pieces(asgi):
    body = os.urandom(300000)
    r = asgi.post("/a/echo", body)
    assert r.status == 200
    assert r.body == body
    assert int(r.header("x-pieces")) > 1  # not buffered whole


def test_chunked_request_body(asgi):
    s = asgi.open_socket()
    s.sendall(b"POST /a/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    r = RawResponse(read_until_close(s))
    assert r.status == 200, r
    assert r.body == b"hello world"


def test_empty_body_and_disconnect_after_response(asgi, workspace, token):
    marker = workspace.state_path("disc-" + token)
    r = asgi.get("/a/disconnect?" + marker)
    assert r.status == 200 and r.body == b"done"
    # the app creates the file, then writes it: wait for its content
    assert harness.wait_for(lambda: os.path.exists(marker) and os.path.getsize(marker), timeout=5)
    with open(marker) as f:
        assert f.read() == "http.disconnect"


def test_streaming_reaches_client_as_sent(asgi):
    s = asgi.open_socket()
    s.sendall(b"GET /a/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    t0 = time.time()
    head, found = read_until(s, b"chunk0;", timeout=5)
    first = time.time() - t0
    assert found, head
    assert first < 0.35, first  # before the app's first sleep is over
    rest = read_until_close(s)
    r = RawResponse(head + rest)
    assert r.status == 200
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.body == b"chunk0;chunk1;chunk2;end"


def test_app_content_length_kept(asgi):
    r = raw(asgi, "/a/content-length")
    assert r.status == 200
    assert r.header("Content-Length") == "10"
    assert r.header("Transfer-Encoding") is None
    assert r.body == b"0123456789"


def test_head_has_no_body(asgi):
    r = raw(asgi, "/a/hello", method="HEAD")
    assert r.status == 200
    assert r.body == b""
    assert b"Hello" not in r.raw


def test_duplicate_headers_and_status(asgi):
    r = raw(asgi, "/a/cookies")
    assert r.status == 201
    assert b"Set-Cookie: a=1\r\n" in r.raw or b"set-cookie: a=1\r\n" in r.raw
    assert b"Set-Cookie: b=2\r\n" in r.raw or b"set-cookie: b=2\r\n" in r.raw
    r = raw(asgi, "/a/status")
    assert r.status == 299
    assert r.body == b"odd status"


def test_large_streamed_response(asgi):
    r = asgi.get("/a/big", timeout=30)
    assert r.status == 200
    assert len(r.body) == 64 * 65536


def test_wsgi_and_asgi_side_by_side(asgi):
    for _ in range(5):
        assert asgi.get("/w").status == 200
        assert asgi.get("/a/hello").body == b"Hello, ASGI!"


# ---- bad apps --------------------------------------------------------------------

def _one_entry(asgi, mark, *needles):
    entries = asgi.wait_log_entries(mark, count=1)
    assert len(entries) == 1, entries
    for n in needles:
        assert n in asgi.log_since(mark), (n, asgi.log_since(mark))
    return entries[0]


def test_callable_falls_back_to_app(asgi):
    assert asgi.get("/bad/ok").body == b"fine"


def test_neither_callable_is_one_error(asgi):
    mark = asgi.log_mark()
    assert asgi.get("/neither").status == 500
    entry = _one_entry(asgi, mark, "PYH0012")
    assert "'application'" in entry and "'app'" in entry


def test_raise_before_start_is_500_with_traceback(asgi):
    mark = asgi.log_mark()
    r = asgi.get("/bad/raise-before")
    assert r.status == 500
    _one_entry(asgi, mark, "PYH0203", "ValueError: boom before start", "/bad/raise-before")


def test_raise_after_start_cuts_response(asgi):
    mark = asgi.log_mark()
    r = raw(asgi, "/bad/raise-after")
    assert r.status == 200
    assert not r.complete  # no terminating chunk
    assert r.body.startswith(b"partial")
    _one_entry(asgi, mark, "PYH0203", "boom after start")


def test_return_without_response_is_500(asgi):
    for path in ("/bad/no-response", "/bad/start-only"):
        mark = asgi.log_mark()
        assert asgi.get(path).status == 500
        _one_entry(asgi, mark, "PYH0201", "without sending a response")


@pytest.mark.parametrize("path,problem", [
    ("/bad/bad-status", "status must be an int"),
    ("/bad/bad-headers", "must be bytes"),
    ("/bad/crlf-header", "control character"),
    ("/bad/bad-body", "body must be bytes"),
    ("/bad/start-twice", "start sent twice"),
    ("/bad/unknown-type", "unknown message type"),
    ("/bad/swallowed", "status must be an int"),
])
def test_invalid_message_is_named(asgi, path, problem):
    mark = asgi.log_mark()
    r = asgi.get(path)
    assert r.status == 500
    _one_entry(asgi, mark, "PYH0204", problem)


def test_short_body_for_content_length(asgi):
    # streamed: the headers are out, the response is cut
    mark = asgi.log_mark()
    r = raw(asgi, "/bad/short-stream")
    assert r.status == 200
    assert not r.complete
    assert r.body == b"only this"
    _one_entry(asgi, mark, "PYH0202")
    # in one piece: nothing went out yet, so a 500
    mark = asgi.log_mark()
    assert raw(asgi, "/bad/short-body").status == 500
    _one_entry(asgi, mark, "PYH0202")


def test_send_after_complete_is_logged(asgi):
    mark = asgi.log_mark()
    r = asgi.get("/bad/after-complete")
    assert r.status == 200 and r.body == b"complete"
    _one_entry(asgi, mark, "PYH0204", "after the response was complete")


def test_storm_of_bad_requests_then_serves(asgi):
    paths = ["/bad/raise-before", "/bad/raise-after", "/bad/no-response",
             "/bad/bad-status", "/bad/unknown-type", "/bad/start-only"]
    for i in range(300):
        try:
            raw(asgi, paths[i % len(paths)])
        except OSError:
            pass
    for _ in range(10):
        assert asgi.get("/a/hello").body == b"Hello, ASGI!"
    assert not harness.CRASH_RE.search(asgi.error_log())


# ---- lifespan --------------------------------------------------------------------

def test_lifespan_state_in_every_request(asgi, workspace):
    seen = set()
    for _ in range(6):
        r = asgi.get("/life")
        assert r.status == 200, r
        d = r.json()
        assert d["state"]["pool"] == "made-at-startup"
        assert d["state"]["pid"] == d["pid"]
        assert "mutated-by-request" not in d["state"]  # a copy per request
        assert d["startups"] == 1  # once per process, before serving
        seen.add(d["pid"])
    with open(workspace.state_path("asgi_lifespan.log")) as f:
        started = [l.split()[1] for l in f if l.startswith("startup")]
    for pid in seen:
        assert started.count(str(pid)) == 1


def test_lifespan_off_has_empty_state(asgi):
    d = asgi.get("/life-off").json()
    assert d["state"] == {}


def test_lifespan_failure_is_503_others_serve(asgi):
    assert "PYH0205" in asgi.error_log() and "database unreachable" in asgi.error_log()
    assert asgi.get("/life-fail").status == 503
    assert asgi.get("/a/hello").status == 200


def test_lifespan_shutdown_at_stop(short_server, workspace, mpm):
    log = workspace.state_path("asgi_lifespan.log")
    srv = short_server("asgi-shut", mpm=mpm,
                       extra="ASGIScriptAlias /life @APPS@/asgi_lifespan.py\n")
    srv.start()
    pid = srv.get("/life").json()["pid"]
    srv.stop()
    with open(log) as f:
        lines = f.read().split("\n")
    assert "startup %d" % pid in lines
    assert "shutdown %d" % pid in lines


def test_lifespan_unsupported_under_auto_is_one_info_line(short_server, mpm):
    srv = short_server("asgi-auto", mpm=mpm,
                       extra="LogLevel info\nASGIScriptAlias /a @APPS@/asgi_http.py\n")
    srv.start()
    assert srv.get("/a/hello").status == 200
    text = srv.error_log()
    lines = [l for l in text.splitlines() if "PYH0206" in l]
    assert lines and all("[pyhost:info]" in l for l in lines)
    assert "PYH0205" not in text


# ---- configuration ---------------------------------------------------------------

@pytest.mark.parametrize("line,needle", [
    ("ASGIScriptAlias /x @APPS@/asgi_http.py lifespan=maybe", "lifespan takes auto, on or off"),
    ("ASGILifespan sometimes", "lifespan takes auto, on or off"),
    ("ASGIEventLoop trio", "ASGIEventLoop takes auto, asyncio or uvloop"),
    ("ASGIScriptAlias /x @APPS@/asgi_http.py pass-authorization=On", "pass-authorization= is WSGI's"),
    ("ASGIScriptAlias /x @APPS@/asgi_http.py bogus=1", "unknown option"),
    ("ASGIWebSocketMaxMessage 0", "of bytes, 1 to 1073741824"),
    ("ASGIWebSocketPingInterval -1", "of seconds, 0 to 86400"),
    # 0 would close every WebSocket at its first ping
    ("ASGIWebSocketPingTimeout 0", "of seconds, 1 to 86400"),
])
def test_bad_directives(short_server, line, needle):
    srv = short_server("asgi-badconf", extra=line + "\n")
    rc, out = srv.config_test()
    assert rc != 0
    assert needle in out, out


@pytest.mark.parametrize("extra,needle", [
    ("ASGIScriptAlias /a @APPS@/asgi_http.py application-group=other\n", "PYH0221"),
])
def test_unsupported_placement_is_a_startup_error(short_server, extra, needle):
    srv = short_server("asgi-daemon", extra=extra)
    with pytest.raises(Exception):
        srv.start(timeout=15)
    assert needle in srv.error_log()


def test_asyncio_loop_choice(short_server, mpm):
    srv = short_server("asgi-asyncio", mpm=mpm,
                       extra="ASGIEventLoop asyncio\nASGIScriptAlias /a @APPS@/asgi_http.py\n")
    srv.start()
    assert srv.get("/a/hello").body == b"Hello, ASGI!"


@pytest.mark.parametrize("path", ["/a/echo", "/a/echo-tolerant"])
def test_apache_answers_a_bad_chunked_body_alone(asgi, path):
    # Apache's HTTP_IN filter sends its own 400 while the app reads; whatever
    # the app answers after that must not follow Apache's page on the wire.
    mark = asgi.log_mark()
    data = asgi.raw(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    b"zz\r\nabc\r\n0\r\n\r\n")
    assert data.status == 400, data
    assert data.body.count(b"<html>") == 1 and data.body.rstrip().endswith(b"</html>"), data
    assert b"{app}" not in data.body, data
    assert not harness.CRASH_RE.search(asgi.log_since(mark))
    assert asgi.get("/a/hello").body == b"Hello, ASGI!"
