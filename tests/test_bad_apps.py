"""Misbehaving WSGI apps: each bad request ends in a 500 (or a cut response
once headers are out) and exactly one PYH error-log entry, and the server
goes on serving."""

import json
import os
import re
import time

import pytest

from harness import CRASH_RE, MPMS, Apache, Workspace, wait_for

# case -> text the log must contain (the app's own exception message), or None
BEFORE_HEADERS = {
    "raises": "pyhost-test-boom-raises",
    "raises-after-start": "pyhost-test-boom-after-start",
    "returns-str": None,
    "returns-list-of-str": None,
    "returns-none": None,
    "status-abc": None,
    "status-20": None,
    "status-bytes": None,
    "header-name-nonlatin1": None,
    "header-value-nonlatin1": None,
    "header-value-crlf": None,
    "header-value-lf": None,
    "header-name-crlf": None,
    "header-value-bytes": None,
    "headers-not-list": None,
    "no-start-response": None,
    "start-twice": None,
    "write-str": None,
    "content-length-invalid": None,
    "content-length-negative": None,
    "start-missing-headers": "missing required argument 'response_headers'",
    "start-too-many": "takes at most 3 arguments (4 given)",
    "start-unknown-keyword": "unexpected keyword argument 'exc'",
    "start-duplicate-argument": "multiple values for argument 'status'",
}

AFTER_HEADERS = {
    "str-after-headers": None,
    "raises-after-headers": "pyhost-test-boom-mid-stream",
}


def get_raw(server, path):
    return server.raw(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                      % path.encode(), timeout=15)


def check_one_entry(server, mark, text):
    entries = server.wait_log_entries(mark, count=1, timeout=2)
    assert len(entries) == 1, "expected exactly one PYH entry, got %d:\n%s" % (
        len(entries), "\n".join(entries))
    if text:
        assert text in server.log_since(mark), "exception text missing from the log"
    assert "Traceback" in server.log_since(mark) or not text


def check_still_serving(server):
    r = server.get("/bad/ok")
    assert r.status == 200
    assert r.body == b"still serving"


@pytest.mark.parametrize("case", sorted(BEFORE_HEADERS))
def test_bad_app_gives_500_and_one_entry(server, case):
    mark = server.log_mark()
    r = get_raw(server, "/bad/" + case)
    assert r.status == 500, r
    # Nothing the app tried to put in its headers leaks out.
    assert b"X-Injected" not in r.raw
    assert b"X-Split" not in r.raw
    check_one_entry(server, mark, BEFORE_HEADERS[case])
    check_still_serving(server)


@pytest.mark.parametrize("case", sorted(AFTER_HEADERS))
def test_bad_app_after_headers_cuts_response(server, case):
    mark = server.log_mark()
    r = get_raw(server, "/bad/" + case)
    assert r.status in (200, 500), r
    if r.status == 200:
        assert not r.complete, "a broken response must not look complete: %r" % r
    check_one_entry(server, mark, AFTER_HEADERS[case])
    check_still_serving(server)


def test_close_raising_is_logged_once(server):
    mark = server.log_mark()
    r = get_raw(server, "/bad/close-raises")
    # The body was complete before close() raised; the status may still be 500
    # if the module buffers small bodies.
    assert r.status in (200, 500), r
    check_one_entry(server, mark, "pyhost-test-boom-in-close")
    check_still_serving(server)


def test_many_bad_requests_in_a_row(server):
    mark = server.log_mark()
    n = 20
    for _ in range(n):
        assert server.get("/bad/raises").status == 500
    entries = server.wait_log_entries(mark, count=n)
    assert len(entries) == n, entries
    check_still_serving(server)
    # No child died along the way.
    assert "exit signal" not in server.log_since(mark)


def test_entries_name_the_request(server):
    mark = server.log_mark()
    assert server.get("/bad/raises?q=pyhost-query").status == 500
    entries = server.wait_log_entries(mark, count=1)
    assert len(entries) == 1
    # Logged against the request: Apache's [client ...] tag on the entry.
    assert "client 127.0.0.1" in entries[0], entries[0]


@pytest.mark.parametrize("case", ["raises", "returns-str", "status-abc", "header-value-crlf",
                                  "no-start-response", "start-twice"])
def test_bad_app_in_sub_interpreter(server, case):
    mark = server.log_mark()
    r = get_raw(server, "/badsub/" + case)
    assert r.status == 500, r
    check_one_entry(server, mark, BEFORE_HEADERS[case])
    r = server.get("/badsub/ok")
    assert r.status == 200 and r.body == b"still serving"


def test_bad_app_in_sub_interpreter_after_headers(server):
    mark = server.log_mark()
    r = get_raw(server, "/badsub/raises-after-headers")
    assert r.status in (200, 500), r
    if r.status == 200:
        assert not r.complete
    check_one_entry(server, mark, "pyhost-test-boom-mid-stream")
    assert server.get("/badsub/ok").status == 200


def test_missing_script_is_404(server):
    mark = server.log_mark()
    r = server.get("/missing")
    assert r.status == 404
    assert len(server.log_entries_since(mark)) <= 1
    check_still_serving(server)


def test_script_failing_at_import(server):
    for _ in range(2):  # loading is retried, and fails the same way, each time
        mark = server.log_mark()
        r = server.get("/import-raises")
        assert r.status == 500
        check_one_entry(server, mark, "pyhost-test-import-time-failure")
    check_still_serving(server)


@pytest.mark.parametrize("path,name", [("/no-callable", "application"),
                                       ("/callable/notcallable", "application_not_callable")])
def test_missing_or_bad_callable(server, path, name):
    mark = server.log_mark()
    r = server.get(path)
    assert r.status == 500
    entries = server.wait_log_entries(mark, count=1, timeout=2)
    assert len(entries) == 1, entries
    # Names the callable and the script it was looked up in.
    assert "PYH0012" in entries[0] and name in entries[0], entries[0]
    assert ".wsgi" in entries[0], entries[0]
    check_still_serving(server)


def test_start_response_by_keyword(server):
    r = server.get("/bad/keywords")
    assert r.status == 200, r
    assert r.body == b"keywords ok"


def test_request_objects_used_after_their_request(server):
    from harness import do_request
    for _attempt in range(5):
        conn = server.connection()
        try:
            r1 = do_request(conn, "POST", "/stash/stash", body=b"body")
            r2 = do_request(conn, "GET", "/stash/use")
            r3 = do_request(conn, "GET", "/bad/ok")
        finally:
            conn.close()
        assert r1.status == 200, r1
        a, b = r1.json(), r2.json() if r2.status == 200 else None
        if b is not None and b["pid"] == a["pid"] and b["stashed"]:
            break
        time.sleep(0.3)
    assert r2.status == 200, "using stale request objects broke the request: %r" % r2
    assert r3.status == 200
    # Whatever each stale call did, the child survived it.
    log = server.error_log()
    assert not CRASH_RE.findall(log), CRASH_RE.findall(log)
    # Stale objects must not write into another request's response.
    assert b"stale write" not in r2.body


def stash_then_use(server, stash_path):
    """Stashes on one keep-alive connection, then uses the stash from the
    same child; returns the use request's JSON."""
    from harness import do_request
    for _attempt in range(5):
        conn = server.connection()
        try:
            r1 = do_request(conn, "POST", stash_path, body=b"body")
            r2 = do_request(conn, "GET", "/stash/use")
        finally:
            conn.close()
        assert r1.status == 200, r1
        assert r2.status == 200, "using stale request objects broke the request: %r" % r2
        a, b = r1.json(), r2.json()
        if b["pid"] == a["pid"] and b["stashed"]:
            return b
        time.sleep(0.3)
    pytest.fail("stash and use never ran in the same child")


STALE = {  # what using each kept object after its request does
    "input": {"input.read": "raised:ValueError", "input.readline": "raised:ValueError"},
    "errors": {"errors.write": "raised:ValueError"},
    "write": {"write": "raised:RuntimeError"},
    "start_response": {"start_response": "raised:RuntimeError"},
    "environ": {"environ": "ok:int", "environ.input.read": "raised:ValueError",
                "environ.errors.write": "raised:ValueError"},
}


@pytest.mark.parametrize("kept", sorted(STALE))
def test_a_kept_request_object_is_never_reused(server, kept):
    # pyhost hands a finished request's objects to a later request when
    # nothing kept them; keeping any one of them (or environ, which holds
    # wsgi.input and wsgi.errors) must keep the whole set out of reuse.
    b = stash_then_use(server, "/stash/stash?only=" + kept)
    for k, v in STALE[kept].items():
        assert b[k] == v, (k, b)
    same = {k: v for k, v in b.items() if k.startswith("same.")}
    assert same and not any(same.values()), b
    assert b"stale write" not in json.dumps(b).encode()


def test_request_objects_are_reused_when_nothing_kept_them(server):
    # The other side of the test above: without it, that test could pass
    # with no reuse at all. Sequential requests on one connection run in
    # one child and one interpreter, so the second one gets the first
    # one's objects back.
    from harness import do_request
    conn = server.connection()
    try:
        rs = [do_request(conn, "GET", "/stash/ids") for _ in range(3)]
    finally:
        conn.close()
    docs = [r.json() for r in rs]
    assert len({d["pid"] for d in docs}) == 1, docs
    assert docs[2]["now"] == docs[2]["before"], docs


@pytest.mark.parametrize("case", ["sys-exit", "keyboard-interrupt", "base-exception"])
def test_base_exceptions_do_not_end_the_child(server, case, token):
    import os
    mark = server.log_mark()
    r = get_raw(server, "/bad/%s?%s" % (case, token))
    assert r.status == 500, r
    check_one_entry(server, mark, None)
    with open(server.ws.state_path("pid-" + token)) as f:
        pid = int(f.read())
    time.sleep(0.5)
    assert os.path.exists("/proc/%d" % pid), "the child that ran the app exited"
    with open("/proc/%d/status" % pid) as f:
        assert "zombie" not in f.read()
    check_still_serving(server)


# ---- start_response's exc_info, well and badly formed ----------------------
# sys.exc_info() outside an except block is (None, None, None); passed to
# start_response after the headers went out it used to reach PyErr_Restore
# as is and kill the process (embedded: AH00052 ... Segmentation fault;
# daemon: PYH0040 ... killed by signal 11), or damage its memory so that a
# later request crashed. Each case runs on a server with one process, so
# the follow-up requests (a wsgi.file_wrapper response among them) run
# where the bad request ran.

EXCINFO_VALID = ("none3", "real", "real-tb-none", "real-other-tb")
EXCINFO_JUNK = ("ints", "str-value", "type-mismatch", "type-not-class", "int-type-value",
                "none-type", "class-as-value", "bad-tb", "not-tuple", "short-tuple", "str")
ONE_PROCESS = {
    "event": "StartServers 1\nServerLimit 1\nThreadsPerChild 4\nMinSpareThreads 1\n"
             "MaxSpareThreads 4\nMaxRequestWorkers 4\n",
    "prefork": "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\n"
               "MaxRequestWorkers 1\n",
}
ONE_PROCESS["worker"] = ONE_PROCESS["event"]
DAEMON_KILLED_RE = re.compile(r"PYH0040.*killed by signal")


def _excinfo_modes():
    wanted = os.environ.get("PYHOST_TEST_MPMS")
    mpms = [m.strip() for m in wanted.split(",")] if wanted else list(MPMS)
    mpms = [m for m in mpms if m in MPMS]
    return [("embedded", m) for m in mpms] + [("daemon", mpms[0] if mpms else "event")]


@pytest.fixture(scope="module", params=_excinfo_modes(), ids="-".join)
def exc_server(request, workspace):
    mode, mpm = request.param
    app = "@APPS@/excinfo.wsgi"
    if mode == "daemon":
        extra = ("WSGIDaemonProcess excgrp processes=1 threads=2\n"
                 "WSGIScriptAlias /excinfo %s process-group=excgrp\n" % app)
    else:
        extra = ONE_PROCESS[mpm] + "WSGIScriptAlias /excinfo %s\n" % app
    srv = Apache(workspace, "excinfo-%s-%s" % (mode, mpm), mpm=mpm, extra=extra)
    srv.start()
    # A daemon answers once it is up; only then is the log quiet.
    assert wait_for(lambda: srv.get("/excinfo/pid").status == 200, timeout=20)
    yield srv
    srv.stop()


def _served_by(srv, token):
    path = srv.ws.state_path("pid-" + token)
    assert wait_for(lambda: os.path.exists(path), timeout=5), "the app never ran"
    with open(path) as f:
        return int(f.read())


def _check_process_intact(srv, pid, mark):
    """The process that ran the bad request is alive and serves a burst
    (file_wrapper responses among them) correctly; nothing died."""
    blob = Workspace.blob_bytes()
    for i in range(6):
        path = "/excinfo/file" if i % 2 == 0 else "/excinfo/pid"
        r = srv.get(path)
        assert r.status == 200, r
        assert r.header("X-Pid") == str(pid), \
            "request %d served by %s, not by the process of the bad request (%d)" % (
                i, r.header("X-Pid"), pid)
        if path == "/excinfo/file":
            assert r.body == blob, "file_wrapper body damaged (%d bytes)" % len(r.body)
    log = srv.log_since(mark)
    assert not CRASH_RE.findall(log), log[-3000:]
    assert not DAEMON_KILLED_RE.findall(log), log[-3000:]
    assert os.path.exists("/proc/%d" % pid)


def _check_entries(srv, mark, count, text=None):
    entries = srv.wait_log_entries(mark, count=max(count, 1), timeout=5 if count else 0.5)
    assert len(entries) == count, "expected %d PYH entries, got %d:\n%s" % (
        count, len(entries), srv.log_since(mark)[-3000:])
    if text:
        assert text in srv.log_since(mark), srv.log_since(mark)[-3000:]


def _get(srv, path, token):
    return srv.raw(b"GET %s?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                   % (path.encode(), token.encode()), timeout=15)


@pytest.mark.parametrize("kind", EXCINFO_VALID + EXCINFO_JUNK)
def test_exc_info_on_first_call(exc_server, kind, token):
    srv = exc_server
    mark = srv.log_mark()
    r = _get(srv, "/excinfo/%s/first" % kind, token)
    pid = _served_by(srv, token)
    if kind in EXCINFO_VALID:
        # Nothing to replace yet: a normal response.
        assert r.status == 200 and r.body == b"first call", r
        _check_entries(srv, mark, 0)
    else:
        assert r.status == 500 and b"first call" not in r.raw, r
        _check_entries(srv, mark, 1, "TypeError")
    _check_process_intact(srv, pid, mark)


@pytest.mark.parametrize("kind", EXCINFO_VALID + EXCINFO_JUNK)
def test_exc_info_before_headers_sent(exc_server, kind, token):
    srv = exc_server
    mark = srv.log_mark()
    r = _get(srv, "/excinfo/%s/before" % kind, token)
    pid = _served_by(srv, token)
    if kind in EXCINFO_VALID:
        # PEP 3333: the new status and headers replace the stored ones. For
        # (None, None, None) too, as in wsgiref and mod_wsgi: an error page
        # built outside an except block is still an error page.
        assert r.status == 500 and r.body == b"error page", r
        assert r.header("X-Second") == "yes" and r.header("X-First") is None, r
        _check_entries(srv, mark, 0)
    else:
        assert r.status == 500 and b"error page" not in r.raw, r
        assert b"X-Second" not in r.raw and b"X-First" not in r.raw, r
        _check_entries(srv, mark, 1, "TypeError")
    _check_process_intact(srv, pid, mark)


def _after_text(kind):
    if kind == "none3":
        return "RuntimeError"
    if kind in EXCINFO_VALID:
        return "pyhost-test-excinfo-real"
    return "TypeError"


@pytest.mark.parametrize("kind", EXCINFO_VALID + EXCINFO_JUNK)
def test_exc_info_after_headers_sent(exc_server, kind, token):
    srv = exc_server
    mark = srv.log_mark()
    r = _get(srv, "/excinfo/%s/after" % kind, token)
    pid = _served_by(srv, token)
    # Too late to change the response: start_response raises (the app's
    # own exception, re-raised; or a RuntimeError / TypeError for an
    # exc_info with no exception or a malformed one); the app lets it
    # through, so the response is cut and logged once.
    assert r.status == 200 and not r.complete, r
    assert b"must-not-be-sent" not in r.raw
    assert r.body.startswith(b"partial-"), r
    _check_entries(srv, mark, 1, _after_text(kind))
    _check_process_intact(srv, pid, mark)


@pytest.mark.parametrize("kind", EXCINFO_VALID + EXCINFO_JUNK)
def test_exc_info_after_headers_sent_caught_by_the_app(exc_server, kind, token):
    srv = exc_server
    mark = srv.log_mark()
    r = _get(srv, "/excinfo/%s/after/caught" % kind, token)
    pid = _served_by(srv, token)
    # What start_response raised is an ordinary exception the app can
    # catch, format and move on from.
    want = {"none3": "RuntimeError"}.get(
        kind, "ValueError" if kind in EXCINFO_VALID else "TypeError")
    assert r.status == 200 and r.complete, r
    assert r.body.endswith(b"caught:%s:True" % want.encode()), r.body[-200:]
    _check_entries(srv, mark, 0)
    _check_process_intact(srv, pid, mark)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("what", ["none3", "ints"])
def test_junk_in_the_error_state_is_reported_not_trusted(exc_server, what, when, token):
    # A C extension (here ctypes) can leave any three objects in CPython's
    # error state; the module's error handling takes them off to log them
    # and must not treat a non-exception as an exception object.
    srv = exc_server
    mark = srv.log_mark()
    r = _get(srv, "/excinfo/raw-restore/%s/%s" % (what, when), token)
    pid = _served_by(srv, token)
    assert b"must-not-be-sent" not in r.raw
    if when == "before":
        assert r.status == 500, r
    else:
        assert r.status == 200 and not r.complete, r
    _check_entries(srv, mark, 1, "TypeError")
    _check_process_intact(srv, pid, mark)


def test_many_none_exc_info_requests_in_a_row(exc_server, token):
    # One such request could leave damage that only a later one trips on.
    srv = exc_server
    mark = srv.log_mark()
    for i in range(20):
        r = _get(srv, "/excinfo/none3/after", token + "x%d" % i)
        assert r.status == 200 and not r.complete, r
    _check_entries(srv, mark, 20)
    _check_process_intact(srv, _served_by(srv, token + "x0"), mark)
