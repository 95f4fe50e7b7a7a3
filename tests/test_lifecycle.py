"""Short-lived servers: graceful restart and stop, preloading at child start,
and startup errors a person can act on."""

import os
import signal
import time

from harness import CRASH_RE, LOG_ID_RE, RawResponse, read_until, read_until_close, wait_for

SIMPLE = r"""
WSGIScriptAlias /env @APPS@/env.wsgi
WSGIScriptAlias /bad @APPS@/bad.wsgi
WSGIScriptAlias /flask @APPS@/flask_app.wsgi
WSGIScriptAlias /alpha @APPS@/groups.wsgi application-group=alpha
WSGIScriptAlias /out @APPS@/output.wsgi
"""


def exercise(srv):
    assert srv.get("/env").status == 200
    assert srv.get("/bad/ok").status == 200
    assert srv.get("/bad/raises").status == 500
    assert srv.get("/flask/").status == 200
    assert srv.get("/alpha").status == 200


def test_session_server_has_not_crashed(server):
    assert server.running()
    crashes = CRASH_RE.findall(server.error_log())
    assert not crashes, crashes


def test_graceful_restart_and_stop(short_server, mpm):
    srv = short_server("restart", mpm=mpm, extra=SIMPLE)
    srv.start()
    exercise(srv)
    for _ in range(2):
        srv.graceful_restart()
        exercise(srv)
    t0 = time.time()
    rc = srv.stop(signal.SIGTERM)
    took = time.time() - t0
    assert rc == 0, rc
    log = srv.error_log()
    assert not CRASH_RE.findall(log), log[-5000:]
    assert "caught SIGTERM, shutting down" in log
    # AH00045/AH00046: a child ignored SIGTERM and had to be killed (a hang in
    # interpreter shutdown, for instance).
    assert "AH00046" not in log and "AH00045" not in log, "children hung on stop"
    assert took < 8, "stop took %.1fs" % took


def test_graceful_stop(short_server, mpm):
    srv = short_server("gstop", mpm=mpm, extra=SIMPLE)
    srv.start()
    exercise(srv)
    rc = srv.stop(signal.SIGWINCH, timeout=30)
    assert rc == 0, rc
    log = srv.error_log()
    assert not CRASH_RE.findall(log), log[-5000:]


def test_import_script_runs_at_child_start(short_server, workspace):
    def preloaded():
        return {f for f in os.listdir(workspace.state) if f.startswith("preload-")}
    before = preloaded()
    srv = short_server("preload", extra=r"""
WSGIImportScript @APPS@/preload.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}
WSGIScriptAlias /preload @APPS@/preload_check.wsgi application-group=%{GLOBAL}
""")
    srv.start()  # wait_ready asks for a static file only: no Python request
    new = wait_for(lambda: preloaded() - before, timeout=10)
    assert new, "no child ran WSGIImportScript before any WSGI request"
    r = srv.get("/preload")
    assert r.status == 200 and r.json()["preloaded"] is not None


def test_unknown_inline_option_is_a_config_error(short_server):
    srv = short_server("badopt", extra="WSGIScriptAlias /x @APPS@/env.wsgi foo=bar\n")
    rc, out = srv.config_test()
    assert rc != 0, out
    assert "foo" in out, out


def test_bad_python_home_is_reported(short_server, workspace):
    home = os.path.join(workspace.root, "not-a-python-home")
    os.makedirs(home, exist_ok=True)
    os.chmod(home, 0o755)
    srv = short_server("badhome", extra="WSGIScriptAlias /env @APPS@/env.wsgi\n",
                       python_home=home)
    srv.start(wait=False)

    def named():
        return [l for l in srv.error_log().splitlines() + srv._stdout_log().splitlines()
                if LOG_ID_RE.search(l) and home in l]
    # Either Apache refuses to start or the children report it; both must
    # name the directory, in a PYH line.
    lines = wait_for(lambda: named() or not srv.running(), timeout=10)
    lines = named()
    if srv.running():
        try:
            srv.get("/env", timeout=3)  # must not hang the test
        except OSError:
            pass
    srv.stop()
    assert lines, "no PYH line naming %s" % home
    assert len(set(LOG_ID_RE.search(l).group(0) for l in lines)) == 1, lines


def test_request_in_flight_survives_graceful_restart(short_server, mpm, workspace, token):
    srv = short_server("inflight", mpm=mpm, extra=SIMPLE)
    srv.start()
    exercise(srv)
    marker = workspace.state_path("stream-" + token)
    with srv.open_socket() as s:
        s.sendall(b"GET /out/stream?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % token.encode())
        data, found = read_until(s, b"first-chunk", timeout=5)
        assert found, data
        srv.graceful_restart()
        # The old generation's child still holds our request; new ones serve.
        exercise(srv)
        open(marker, "w").close()
        data += read_until_close(s, timeout=15)
    r = RawResponse(data)
    assert r.status == 200
    assert r.complete and r.body == b"first-chunk\nsecond-chunk\n", r
    assert srv.stop() == 0
    assert not CRASH_RE.findall(srv.error_log())


def test_graceful_restart_applies_a_changed_config(short_server, mpm):
    # New children start Python afresh with the new config: a new mount and a
    # new WSGIPythonPath both take effect without a full stop.
    srv = short_server("reconf", mpm=mpm, extra=SIMPLE)
    srv.start()
    assert srv.get("/pypath").status == 404
    srv.extra = SIMPLE + ("WSGIPythonPath @APPS@/pylib1:@APPS@/pylib2\n"
                          "WSGIScriptAlias /pypath @APPS@/pypath.wsgi\n")
    srv.write_config(srv.ports)
    srv.graceful_restart()
    deadline = time.time() + 10
    while True:  # old-generation children may still answer for a moment
        r = srv.get("/pypath")
        if r.status == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 200, r
    assert r.json() == {"pyhost_test_mod1": "mod1", "pyhost_test_mod2": "mod2",
                        "pyhost_test_mod3": "mod3"}
    exercise(srv)
    assert srv.stop() == 0
    assert not CRASH_RE.findall(srv.error_log())
