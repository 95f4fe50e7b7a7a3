"""ASGI mounts in application groups (issue 13 points 1 and 2): each group
is its own interpreter with its own event loop thread and lifespan in each
Apache child; WSGI and ASGI mounts of one group share it; %{GLOBAL} is the
main interpreter. Requests that compare interpreters go over one keep-alive
connection, so that on prefork they reach one process."""

import importlib.util
import json
import os
import signal
import sys

import pytest

import harness
from test_asgi_websocket import Client

CONF = r"""
ASGIScriptAlias /one @APPS@/asgi_interp.py application-group=one
ASGIScriptAlias /two @APPS@/asgi_interp.py application-group=two
ASGIScriptAlias /main @APPS@/asgi_interp.py
ASGIScriptAlias /global @APPS@/asgi_interp.py application-group=%{GLOBAL}
WSGIScriptAlias /w-one @APPS@/interp_probe.wsgi application-group=one
WSGIScriptAlias /w-main @APPS@/interp_probe.wsgi
ASGIScriptAlias /fail @APPS@/asgi_lifespan_fail.py application-group=failing
ASGIScriptAlias /srv @APPS@/asgi_interp.py
<Location /srv>
    WSGIApplicationGroup %{SERVER}
</Location>
ASGIScriptAlias /env @APPS@/asgi_interp.py
<Location /env>
    SetEnv PYHOST_ASGI_GROUP from-env
    WSGIApplicationGroup %{ENV:PYHOST_ASGI_GROUP}
</Location>
"""

MPMS = (harness.MPMS if not os.environ.get("PYHOST_TEST_MPMS")
        else [m for m in os.environ["PYHOST_TEST_MPMS"].split(",") if m in harness.MPMS])


@pytest.fixture(scope="module", params=MPMS)
def srv(request, workspace):
    s = harness.Apache(workspace, "asgi-interp-" + request.param, mpm=request.param,
                       extra=CONF)
    s.start()
    yield s
    s.stop()


def probe(srv, *paths):
    """One keep-alive connection: every answer comes from one process."""
    conn = srv.connection()
    try:
        out = []
        for p in paths:
            r = harness.do_request(conn, "GET", p)
            assert r.status == 200, (p, r.status, r.body, srv.error_log()[-3000:])
            out.append(json.loads(r.body))
        return out
    finally:
        conn.close()


def test_groups_are_different_interpreters_with_their_own_loop(srv):
    one, two, main, one_again = probe(srv, "/one/", "/two/", "/main/", "/one/")
    assert len({one["pid"], two["pid"], main["pid"]}) == 1
    assert len({one["token"], two["token"], main["token"]}) == 3
    assert len({one["modules"], two["modules"], main["modules"]}) == 3
    assert len({one["loop_thread"], two["loop_thread"], main["loop_thread"]}) == 3
    assert one_again["token"] == one["token"]
    assert one_again["loop_thread"] == one["loop_thread"]
    assert main["main"] in (True, None) and one["main"] in (False, None)


def test_sub_interpreters_run_asyncio_and_say_so_once(srv):
    one, two, main = probe(srv, "/one/", "/two/", "/main/")
    assert one["loop"] == two["loop"] == "asyncio"
    if importlib.util.find_spec("uvloop"):
        # the main interpreter keeps uvloop: no group imported it first
        assert main["loop"] == "uvloop"
        for g in ("one", "two"):
            line = "[pid %d:" % one["pid"]
            said = [l for l in srv.error_log().splitlines()
                    if "PYH0222: application group '%s'" % g in l and line in l]
            assert len(said) == 1, said
    if sys.version_info < (3, 12):
        # a process-wide _asyncio would mix the interpreters' running loops
        assert not one["asyncio_accel"] and main["asyncio_accel"]


def test_each_group_has_its_own_lifespan_state(srv):
    one, two, main = probe(srv, "/one/", "/two/", "/main/")
    for r in (one, two, main):
        # startup ran once in this interpreter (at child start), its state
        # is this interpreter's and was made on this interpreter's loop
        assert r["startups"] == 1, r
        assert r["state"]["token"] == r["token"]
        assert r["state"]["loop_thread"] == r["loop_thread"]
    log = open(srv.ws.state_path("asgi_interp.log")).read().split("\n")
    for r in (one, two, main):
        assert log.count("startup %s %d" % (r["token"], r["pid"])) == 1, log


def test_request_dependent_groups_start_their_lifespan_at_first_need(srv):
    srv_group, env_group, one = probe(srv, "/srv/", "/env/", "/one/")
    assert len({srv_group["token"], env_group["token"], one["token"]}) == 3
    for r in (srv_group, env_group):
        assert r["startups"] == 1 and r["state"]["token"] == r["token"], r


def test_wsgi_and_asgi_in_one_group_share_the_interpreter(srv):
    a_one, w_one, a_main, w_main = probe(srv, "/one/", "/w-one/", "/main/", "/w-main/")
    assert w_one["group"] == "one"
    assert a_one["token"] == w_one["token"] and a_one["modules"] == w_one["modules"]
    assert a_main["token"] == w_main["token"] and a_main["modules"] == w_main["modules"]
    assert a_one["token"] != a_main["token"]


def test_global_is_the_main_interpreter(srv):
    glob, main, w_main, one = probe(srv, "/global/", "/main/", "/w-main/", "/one/")
    assert glob["token"] == main["token"] == w_main["token"] != one["token"]
    assert glob["loop_thread"] == main["loop_thread"]


def test_websocket_in_a_named_group(srv):
    c = Client(srv, "/one/ws")
    try:
        assert c.status == 101, srv.error_log()[-3000:]
        c.send_text("hi")
        op, payload = c.recv_message()
    finally:
        c.close()
    assert op == 1
    ws = json.loads(payload)
    assert ws["echo"] == "hi" and ws["main"] in (False, None)
    assert ws["state"]["token"] == ws["token"]  # group one's own lifespan
    # the process that served it (there may be several): group one's
    # interpreter there, not its main one
    for _ in range(50):
        one, main = probe(srv, "/one/", "/main/")
        if one["pid"] == ws["pid"]:
            assert ws["token"] == one["token"] != main["token"]
            break
    else:
        pytest.fail("no request reached process %d" % ws["pid"])


def test_lifespan_failure_in_one_group_is_503_for_its_mount_only(srv):
    assert srv.get("/fail/").status == 503
    assert "PYH0205" in srv.error_log() and "database unreachable" in srv.error_log()
    for p in ("/one/", "/two/", "/main/", "/w-one/"):
        assert srv.get(p).status == 200, p


def test_no_refusal_and_shutdown_per_group_at_stop(short_server, workspace, mpm):
    s = short_server("asgi-interp-stop", mpm=mpm, extra=CONF)
    s.start()
    try:
        one, two, main = probe(s, "/one/", "/two/", "/main/")
    finally:
        s.stop()
    log = open(workspace.state_path("asgi_interp.log")).read().split("\n")
    for r in (one, two, main):
        assert "shutdown %s %d" % (r["token"], r["pid"]) in log, log
    assert "PYH0221" not in s.error_log()
    assert "PYH0015" not in s.error_log()


OWN_GIL_CONF = "WSGIPerInterpreterGIL On\n" + CONF + r"""
WSGIScriptAlias /w-solo @APPS@/interp_probe.wsgi application-group=solo
ASGIScriptAlias /a-solo @APPS@/asgi_interp.py
<Location /a-solo>
    WSGIApplicationGroup solo
</Location>
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="per-interpreter GIL needs Python 3.12+")
def test_asgi_groups_share_the_gil_under_per_interpreter_gil(short_server, workspace, mpm):
    """WSGIPerInterpreterGIL On: a group an ASGI mount creates shares the GIL
    (PYH0223; the bridge crashed a process with its own GIL at exit), WSGI
    shares it too; a group a WSGI request made with its own GIL refuses
    ASGI (PYH0224, 500); a graceful stop runs every shutdown, no crash."""
    s = short_server("asgi-interp-owngil", mpm=mpm, extra=OWN_GIL_CONF)
    s.start()
    try:
        one, w_one, two, main = probe(s, "/one/", "/w-one/", "/two/", "/main/")
        assert len({one["token"], two["token"], main["token"]}) == 3
        assert one["token"] == w_one["token"]
        for r in (one, two, main):
            assert r["startups"] == 1 and r["state"]["token"] == r["token"], r
        c = Client(s, "/one/ws")
        try:
            assert c.status == 101
            c.send_text("hi")
            assert json.loads(c.recv_message()[1])["echo"] == "hi"
        finally:
            c.close()
        assert s.get("/fail/").status == 503
        log = s.error_log()
        assert "PYH0223: application group 'one' shares the GIL" in log
        assert "PYH0062: application group 'one'" not in log
        conn = s.connection()
        try:
            assert harness.do_request(conn, "GET", "/w-solo/").status == 200
            assert harness.do_request(conn, "GET", "/a-solo/").status == 500
        finally:
            conn.close()
        log = s.error_log()
        assert "PYH0062: application group 'solo' created with its own GIL" in log
        assert "PYH0224: application group 'solo' has its own GIL" in log
    finally:
        assert s.stop(signal.SIGWINCH, timeout=30) == 0
    log = open(workspace.state_path("asgi_interp.log")).read().split("\n")
    for r in (one, two, main):
        assert "shutdown %s %d" % (r["token"], r["pid"]) in log, s.error_log()[-3000:]
    assert not harness.CRASH_RE.findall(s.error_log()), s.error_log()[-5000:]
    assert "AH00045" not in s.error_log() and "PYH0015" not in s.error_log()
