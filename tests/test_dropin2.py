"""The rest of the mod_wsgi drop-in (issue 15): WSGIRestrictSignal, the
resource options of WSGIDaemonProcess (cpu-time-limit, virtual-memory-limit,
cpu-priority, stack-size, send/receive-buffer-size, socket-user),
WSGIDispatchScript, WSGIHandlerScript, WSGIRestrictProcess and
mod_wsgi.server_metrics()/process_metrics(). Each runs a real Apache with
the real module and looks at the effect from the app or the file system."""

import glob
import os
import pwd
import signal
import time

import pytest

from harness import MPMS, Apache, Workspace


def _mpms():
    wanted = os.environ.get("PYHOST_TEST_MPMS")
    return [m.strip() for m in wanted.split(",") if m.strip() in MPMS] if wanted else list(MPMS)


def started(short_server, name, extra, **kw):
    srv = short_server(name, extra=extra, **kw)
    srv.start(timeout=30)
    return srv


# -- WSGIDaemonProcess resource options ----------------------------------------

LIMITS_CONF = """
WSGISocketPrefix @WORK@/socks/d
WSGIDaemonProcess lim processes=1 threads=2 cpu-time-limit=3000 \
    virtual-memory-limit=4000000000 cpu-priority=5 stack-size=1048576 \
    send-buffer-size=40000 receive-buffer-size=50000
WSGIDaemonProcess plain processes=1 threads=2
WSGIDaemonProcess owned processes=1 threads=1 socket-user=nobody
WSGIScriptAlias /lim @APPS@/dropin2_process.wsgi process-group=lim
WSGIScriptAlias /plain @APPS@/dropin2_process.wsgi process-group=plain
WSGIScriptAlias /emb @APPS@/dropin2_process.wsgi
"""


@pytest.fixture(scope="module", params=_mpms())
def limits_server(request):
    ws = Workspace()
    srv = Apache(ws, "limits", mpm=request.param, extra=LIMITS_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def _proc(srv, path):
    r = srv.get(path)
    assert r.status == 200, (r, srv.error_log()[-3000:])
    return r.json()


def test_cpu_time_limit_sets_rlimit_cpu(limits_server):
    # mod_wsgi: soft = the limit, hard = limit + 1 + shutdown-timeout (5 s)
    assert _proc(limits_server, "/lim")["rlimit_cpu"] == [3000, 3006]
    assert _proc(limits_server, "/plain")["rlimit_cpu"] == [-1, -1]


def test_virtual_memory_limit_sets_rlimit_as(limits_server):
    assert _proc(limits_server, "/lim")["rlimit_as"] == [4000000000, 4000000000]
    assert _proc(limits_server, "/plain")["rlimit_as"] == [-1, -1]


def test_cpu_priority_sets_the_nice_value(limits_server):
    assert _proc(limits_server, "/lim")["nice"] == 5
    assert _proc(limits_server, "/plain")["nice"] == 0


def test_stack_size_sets_the_request_threads_stack(limits_server):
    assert _proc(limits_server, "/lim")["stack_size"] == 1048576
    assert _proc(limits_server, "/plain")["stack_size"] != 1048576


def test_buffer_sizes_on_the_relay_sockets(limits_server):
    # Linux reports twice what was set (its bookkeeping overhead).
    socks = _proc(limits_server, "/lim")["sockets"]
    listening = [s for s in socks if s["listening"]]
    accepted = [s for s in socks if not s["listening"]]
    assert listening and accepted, socks
    for s in listening + accepted:
        assert (s["sndbuf"], s["rcvbuf"]) == (80000, 100000), socks
    plain = _proc(limits_server, "/plain")["sockets"]
    assert all(s["sndbuf"] != 80000 for s in plain), plain


def test_socket_user_owns_the_daemon_socket(limits_server):
    socks = sorted(glob.glob(os.path.join(limits_server.ws.root, "socks", "d.*.sock")))
    assert len(socks) == 3, socks
    by_index = {int(p.rsplit(".", 2)[-2]): os.stat(p).st_uid for p in socks}
    assert by_index[2] == pwd.getpwnam("nobody").pw_uid, by_index
    assert by_index[0] == by_index[1] != by_index[2]   # the others: Apache's User


def test_cpu_time_limit_recycles_the_process(short_server, mpm):
    srv = started(short_server, "cpulimit", """
WSGIDaemonProcess cpu processes=1 threads=2 cpu-time-limit=1
WSGIScriptAlias /cpu @APPS@/dropin2_process.wsgi process-group=cpu
""", mpm=mpm)
    first = _proc(srv, "/cpu?burn=1.5")["pid"]   # finishes: a graceful recycle
    deadline = time.time() + 15
    while time.time() < deadline:
        if _proc(srv, "/cpu")["pid"] != first:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the daemon was not recycled after its CPU time ran out")
    assert "PYH0047: daemon process %d of group 'cpu' is recycling: cpu-time-limit reached" % first \
        in srv.error_log()


@pytest.mark.parametrize("option,value,needle", [
    ("send-buffer-size", "100", "a buffer size must be >= 512 bytes"),
    ("cpu-priority", "x", "cpu-priority=x is not a nice value"),
    ("socket-user", "no-such-user-here", "socket-user: no such user"),
    ("stack-size", "0", "stack-size=0 is not a whole number >= 1"),
])
def test_resource_options_reject_bad_values(short_server, option, value, needle):
    rc, out = short_server("badopt", extra="WSGIDaemonProcess g %s=%s\n" % (option, value)).config_test()
    assert rc != 0 and needle in out, out


# -- WSGIRestrictSignal ------------------------------------------------------------

def test_restrict_signal_is_on_by_default(limits_server):
    for path in ("/emb", "/lim"):
        mark = limits_server.error_log()
        r = _proc(limits_server, path)
        assert r["signal_returned_handler"] and not r["signal_installed"], (path, r)
        new = limits_server.error_log()[len(mark):]
        assert new.count("PYH0127: signal.signal(%d) ignored" % signal.SIGUSR2) == 1, new
        assert "dropin2_process.wsgi:" in new


def test_restrict_signal_off_lets_the_app_install_handlers(short_server):
    # prefork: the request runs on the process's main thread, where Python
    # allows signal.signal at all.
    srv = started(short_server, "sigoff", """
WSGIRestrictSignal Off
WSGIScriptAlias /emb @APPS@/dropin2_process.wsgi
""", mpm="prefork")
    r = _proc(srv, "/emb")
    assert r["signal_installed"], r
    assert "PYH0127" not in srv.error_log()


# -- WSGIDispatchScript --------------------------------------------------------------

DISPATCH_CONF = """
WSGIDaemonProcess admin processes=1 threads=2
WSGIDaemonProcess web processes=1 threads=2
WSGIDispatchScript @APPS@/dropin2_dispatch.py
WSGIScriptAlias /d @APPS@/dropin2_dispatched.wsgi
"""


@pytest.fixture(scope="module", params=_mpms())
def dispatch_server(request):
    ws = Workspace()
    srv = Apache(ws, "dispatch", mpm=request.param, extra=DISPATCH_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


@pytest.mark.parametrize("path,group", [
    ("/d/admin/x", "admin"), ("/d/page", "web"), ("/d/embedded/x", ""),
])
def test_dispatch_script_chooses_the_process_group(dispatch_server, path, group):
    r = _proc(dispatch_server, path)
    assert (r["daemon"], r["process_group"]) == (group, group), r
    assert r["callable"] == "application" and r["application_group"] == ""


def test_dispatch_script_chooses_the_application_group(dispatch_server):
    for path in ("/d/embedded/x", "/d/admin/x"):
        r = dispatch_server.get(path, headers={"X-App-Group": "chosen"}).json()
        assert (r["interpreter"], r["application_group"]) == ("chosen", "chosen"), r


def test_dispatch_script_chooses_the_callable(dispatch_server):
    assert _proc(dispatch_server, "/d/embedded/other")["callable"] == "other"
    assert _proc(dispatch_server, "/d/admin/other")["callable"] == "other"


@pytest.mark.parametrize("path,needle", [
    ("/d/raise/x", "RuntimeError: dispatch refused /d/raise/x"),
    ("/d/int/x", "TypeError: process_group() must return a str, bytes or None, not int"),
])
def test_dispatch_script_failure_is_a_500_with_its_traceback(dispatch_server, path, needle):
    mark = len(dispatch_server.error_log())
    r = dispatch_server.get(path)
    assert r.status == 500
    new = dispatch_server.error_log()[mark:]
    assert new.count("PYH0128: exception in WSGI dispatch script") == 1, new
    assert needle in new, new


# -- WSGIHandlerScript ---------------------------------------------------------------

HANDLER_CONF = """
WSGIDaemonProcess res processes=1 threads=2
WSGIHandlerScript wsgi-resource @APPS@/dropin2_resource.wsgi process-group=res \
    application-group=%{GLOBAL} pass-authorization=On
WSGIHandlerScript wsgi-embedded @APPS@/dropin2_resource.wsgi application-group=hgroup
Alias /files @APPS@/dropin2_files
<Directory @APPS@/dropin2_files>
    AddHandler wsgi-resource .myext
    AddHandler wsgi-embedded .emb
</Directory>
"""


@pytest.fixture(scope="module", params=_mpms())
def handler_server(request):
    ws = Workspace()
    srv = Apache(ws, "handlerscript", mpm=request.param, extra=HANDLER_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def test_handler_script_serves_files_by_extension_in_its_daemon(handler_server):
    r = handler_server.get("/files/page.myext", headers={"Authorization": "Bearer t"})
    assert r.status == 200, (r, handler_server.error_log()[-2000:])
    j = r.json()
    assert (j["file"], j["text"], j["daemon"], j["interpreter"]) == \
        ("page.myext", "hello from page\n", "res", ""), j
    assert j["auth"] == "Bearer t"          # pass-authorization=On


def test_handler_script_embedded_in_its_application_group(handler_server):
    j = handler_server.get("/files/other.emb").json()
    assert (j["file"], j["text"], j["daemon"], j["interpreter"]) == \
        ("other.emb", "second\n", "", "hgroup"), j
    assert j["auth"] is None


def test_handler_script_decides_about_a_missing_file(handler_server):
    r = handler_server.get("/files/missing.myext")
    assert r.status == 404 and r.json()["text"] is None


def test_handler_script_leaves_other_files_to_apache(handler_server):
    r = handler_server.get("/files/plain.txt")
    assert r.status == 200 and r.body == b"plain\n"


# -- mod_wsgi.process_metrics() / server_metrics() ------------------------------------

METRICS_CONF = """
WSGIServerMetrics On
WSGIDaemonProcess mon processes=1 threads=3 server-metrics=On
WSGIDaemonProcess moff processes=1 threads=2
WSGIScriptAlias /m/emb @APPS@/dropin2_metrics.wsgi
WSGIScriptAlias /m/on @APPS@/dropin2_metrics.wsgi process-group=mon
WSGIScriptAlias /m/off @APPS@/dropin2_metrics.wsgi process-group=moff
WSGIDaemonProcess fresh processes=1 threads=1
WSGIScriptAlias /m/fresh @APPS@/dropin2_metrics.wsgi process-group=fresh
"""

PROCESS_KEYS = {"pid", "memory_rss", "memory_max_rss", "cpu_user_time", "cpu_system_time",
                "cpu_time", "restart_time", "current_time", "running_time",
                "request_threads", "active_requests"}


@pytest.fixture(scope="module", params=_mpms())
def metrics_server(request):
    ws = Workspace()
    srv = Apache(ws, "modwsgi-metrics", mpm=request.param, extra=METRICS_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def test_process_metrics_after_start_recording(metrics_server):
    for _ in range(20):   # a child that has served a request before
        j = _proc(metrics_server, "/m/emb")
        if j["process"].get("request_count"):
            break
    p = j["process"]
    assert PROCESS_KEYS | {"request_count", "request_busy_time"} <= set(p), p
    assert p["pid"] == j["pid"] and p["memory_rss"] > 1 << 20
    assert p["memory_max_rss"] >= p["memory_rss"] // 2
    assert 0 <= p["running_time"] < 600 and p["current_time"] >= p["restart_time"]
    assert p["request_count"] >= 1 and p["request_busy_time"] >= 0
    assert p["active_requests"] >= 1          # this one
    d = _proc(metrics_server, "/m/on")["process"]
    assert PROCESS_KEYS <= set(d) and d["request_threads"] == 3, d


def test_process_metrics_is_none_before_recording_starts(metrics_server):
    # mod_wsgi 6: process_metrics() answers once the process opted in with
    # start_recording_metrics(); only this test uses the group "fresh"
    first = _proc(metrics_server, "/m/fresh")
    assert first["before_recording"] is None and first["process"] is not None
    assert _proc(metrics_server, "/m/fresh")["before_recording"] is not None


def test_server_metrics_follow_wsgi_server_metrics(metrics_server):
    for path in ("/m/emb", "/m/on"):
        s = _proc(metrics_server, path)["server"]
        assert s is not None and s["server_limit"] >= 1 and s["thread_limit"] >= 1, (path, s)
        assert s["pyhost"]["requests"]["/m/emb"]["wsgi"]["2xx"] >= 1 or path == "/m/emb", s
    assert _proc(metrics_server, "/m/off")["server"] is None      # server-metrics not On


def test_server_metrics_none_without_the_directive(short_server):
    srv = started(short_server, "nosrvm", "WSGIScriptAlias /m @APPS@/dropin2_metrics.wsgi\n")
    j = _proc(srv, "/m")
    assert j["server"] is None and j["process"]["pid"] == j["pid"]


# -- WSGIRestrictProcess -------------------------------------------------------------

RESTRICT_CONF = """
WSGIDaemonProcess ra processes=1 threads=2
WSGIDaemonProcess rb processes=1 threads=2
WSGIScriptAlias /r/a @APPS@/dropin2_dispatched.wsgi process-group=ra
WSGIScriptAlias /r/b @APPS@/dropin2_dispatched.wsgi process-group=rb
WSGIScriptAlias /r/e @APPS@/dropin2_dispatched.wsgi
WSGIScriptAlias /free/b @APPS@/dropin2_dispatched.wsgi process-group=rb
<Location /r>
    WSGIRestrictProcess ra %{GLOBAL}
</Location>
"""


def test_restrict_process_limits_the_groups_of_a_location(short_server, mpm):
    srv = started(short_server, "restrictproc", RESTRICT_CONF, mpm=mpm)
    assert _proc(srv, "/r/a")["daemon"] == "ra"
    assert _proc(srv, "/r/e")["daemon"] == ""
    mark = len(srv.error_log())
    assert srv.get("/r/b").status == 500
    new = srv.error_log()[mark:]
    assert new.count("PYH0129: process group 'rb' may not be used here (WSGIRestrictProcess)") == 1, new
    assert _proc(srv, "/free/b")["daemon"] == "rb"      # outside the Location


# -- <WSGIInterpreterOptions> ----------------------------------------------------------

INTERP_OPTIONS_CONF = """
WSGIDaemonProcess ipd processes=1 threads=2
<WSGIInterpreterOptions application-group=quiet>
    WSGIRestrictStdout On
    WSGISwitchInterval 0.002
    WSGIPythonPath @APPS@/pylib1
</WSGIInterpreterOptions>
<WSGIInterpreterOptions process-group=ipd>
    WSGISwitchInterval 0.003
    WSGIRestrictSignal Off
</WSGIInterpreterOptions>
<WSGIInterpreterOptions process-group=ipd application-group=quiet>
    WSGISwitchInterval 0.004
</WSGIInterpreterOptions>
WSGIScriptAlias /io/main @APPS@/dropin2_interp.wsgi
WSGIScriptAlias /io/quiet @APPS@/dropin2_interp.wsgi application-group=quiet
WSGIScriptAlias /io/dmain @APPS@/dropin2_interp.wsgi process-group=ipd application-group=%{GLOBAL}
WSGIScriptAlias /io/dquiet @APPS@/dropin2_interp.wsgi process-group=ipd application-group=quiet
"""


@pytest.mark.parametrize("path,switch,stdout,signal_ignored,pylib1", [
    ("/io/main", 0.005, "ok", True, False),           # no block matches
    ("/io/quiet", 0.002, "restricted", True, True),   # application-group=quiet
    ("/io/dmain", 0.003, "ok", False, False),         # process-group=ipd
    ("/io/dquiet", 0.004, "restricted", False, True),  # both: most selectors win
])
def test_interpreter_options_scope_settings(short_server, path, switch, stdout,
                                            signal_ignored, pylib1):
    srv = started(short_server, "interpopts", INTERP_OPTIONS_CONF)
    j = _proc(srv, path)
    assert j["switchinterval"] == pytest.approx(switch), j
    assert (j["stdout"], j["signal_ignored"], j["pylib1"]) == (stdout, signal_ignored, pylib1), j


@pytest.mark.parametrize("body,needle", [
    ("WSGIPythonOptimize 1", "WSGIPythonOptimize is not allowed inside <WSGIInterpreterOptions>"),
    ("", None),
])
def test_interpreter_options_section_checks(short_server, body, needle):
    for head in ("<WSGIInterpreterOptions color=red>", "<WSGIInterpreterOptions process-group=x>"):
        rc, out = short_server("iosect", extra="%s\n%s\n</WSGIInterpreterOptions>\n"
                               % (head, body)).config_test()
        if "color" in head:
            assert rc != 0 and "'color' is not process-group=NAME or application-group=NAME" in out, out
        elif needle:
            assert rc != 0 and needle in out, out
        else:
            assert rc == 0 and "Syntax OK" in out, out


# -- the other options mod_wsgi applies ------------------------------------------------

MISC_CONF = """
WSGIDaemonProcess sw processes=1 threads=1 switch-interval=0.007
WSGIDaemonProcess su-root processes=1 threads=1 script-user=root
WSGIDaemonProcess su-nobody processes=1 threads=1 script-user=nobody
WSGIDaemonProcess sg-root processes=1 threads=1 script-group=#0
WSGIDaemonProcess jail processes=1 threads=1 chroot=/nonexistent-pyhost-jail connect-timeout=3
WSGIScriptAlias /x/emb @APPS@/dropin2_misc.wsgi
WSGIScriptAlias /x/off @APPS@/dropin2_misc.wsgi
WSGIScriptAlias /x/sw @APPS@/dropin2_misc.wsgi process-group=sw
WSGIScriptAlias /x/daemon-pass @APPS@/dropin2_misc.wsgi process-group=sw
WSGIScriptAlias /x/su-root @APPS@/dropin2_misc.wsgi process-group=su-root
WSGIScriptAlias /x/su-nobody @APPS@/dropin2_misc.wsgi process-group=su-nobody
WSGIScriptAlias /x/sg-root @APPS@/dropin2_misc.wsgi process-group=sg-root
WSGIScriptAlias /x/jail @APPS@/dropin2_misc.wsgi process-group=jail
<Location /x/emb>
    WSGIPassApacheRequest On
</Location>
<Location /x/daemon-pass>
    WSGIPassApacheRequest On
</Location>
"""


@pytest.fixture(scope="module", params=_mpms())
def misc_server(request):
    ws = Workspace()
    srv = Apache(ws, "misc", mpm=request.param, extra=MISC_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def test_pass_apache_request_gives_a_capsule_in_embedded_mode(misc_server):
    assert _proc(misc_server, "/x/emb")["request_rec"] == "PyCapsule"
    assert _proc(misc_server, "/x/off")["request_rec"] is None
    assert _proc(misc_server, "/x/daemon-pass")["request_rec"] is None   # as mod_wsgi


def test_daemon_switch_interval(misc_server):
    assert _proc(misc_server, "/x/sw")["switchinterval"] == pytest.approx(0.007)
    assert _proc(misc_server, "/x/emb")["switchinterval"] == pytest.approx(0.005)


def test_script_user_and_group(misc_server):
    # the workspace's copies of the apps belong to root
    assert misc_server.get("/x/su-root").status == 200
    assert misc_server.get("/x/sg-root").status == 200
    mark = len(misc_server.error_log())
    assert misc_server.get("/x/su-nobody").status == 403
    new = misc_server.error_log()[mark:]
    assert "PYH0130: daemon group 'su-nobody' runs only scripts of user 'nobody' (script-user=)" in new, new
    assert "belongs to user 'root'" in new


def test_chroot_is_applied(misc_server):
    # a directory that does not exist: the daemon cannot start, and says why
    assert misc_server.get("/x/jail").status in (502, 503)
    assert "PYH0131: daemon group 'jail': cannot chroot to '/nonexistent-pyhost-jail'" \
        in misc_server.error_log()


def test_ignore_activity_lets_inactivity_timeout_run_out(short_server):
    # mod_wsgi's use: a health check must not keep an idle daemon alive
    srv = started(short_server, "ignoreact", """
WSGIDaemonProcess idle processes=1 threads=2 inactivity-timeout=1
WSGIScriptAlias /health @APPS@/dropin2_misc.wsgi process-group=idle
WSGIScriptAlias /work @APPS@/dropin2_misc.wsgi process-group=idle
<Location /health>
    WSGIIgnoreActivity On
</Location>
""")
    assert srv.get("/work").status == 200
    deadline = time.time() + 4
    while time.time() < deadline:          # health checks only, every 0.3 s
        assert srv.get("/health").status == 200
        time.sleep(0.3)
    assert "recycling: inactivity-timeout reached" in srv.error_log()


def test_without_ignore_activity_requests_keep_the_daemon(short_server):
    srv = started(short_server, "keepact", """
WSGIDaemonProcess idle processes=1 threads=2 inactivity-timeout=1
WSGIScriptAlias /work @APPS@/dropin2_misc.wsgi process-group=idle
""")
    deadline = time.time() + 3
    while time.time() < deadline:
        assert srv.get("/work").status == 200
        time.sleep(0.3)
    assert "inactivity-timeout reached" not in srv.error_log()
