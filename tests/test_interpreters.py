"""Application groups and GIL modes: WSGIPerInterpreterGIL (PEP 684, one
GIL per named group on Python 3.12+) and WSGIFreeThreading (PEP 703, a
free-threaded build with the GIL off).

Each test runs against the module built for the Python running pytest;
what needs another Python (3.12+, < 3.12, a free-threaded build) skips with
the reason, and CI's matrix runs this file under each Python.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading

import pytest

from harness import CRASH_RE, wait_for

PY = "%d.%d" % sys.version_info[:2]
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
HAVE_OWN_GIL = sys.version_info >= (3, 12)

needs_own_gil = pytest.mark.skipif(
    not HAVE_OWN_GIL, reason="per-interpreter GIL needs Python 3.12+; this is %s" % PY)
needs_free_threaded = pytest.mark.skipif(
    not FREE_THREADED, reason="needs a free-threaded Python (3.13t+); this is %s with the GIL" % PY)

# One process, so that concurrent requests meet in one Python.
ONE_PROCESS = """
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MinSpareThreads 1
MaxSpareThreads 4
MaxRequestWorkers 4
"""

GROUPS = ONE_PROCESS + """
WSGIScriptAlias /spin/alpha @APPS@/gilspin.wsgi application-group=alpha
WSGIScriptAlias /spin/beta @APPS@/gilspin.wsgi application-group=beta
WSGIScriptAlias /spin/main @APPS@/gilspin.wsgi application-group=%{GLOBAL}
WSGIScriptAlias /grp/alpha @APPS@/groups.wsgi application-group=alpha
WSGIScriptAlias /grp/alpha2 @APPS@/groups2.wsgi application-group=alpha
WSGIScriptAlias /grp/beta @APPS@/groups.wsgi application-group=beta
WSGIScriptAlias /grp/main @APPS@/groups.wsgi application-group=%{GLOBAL}
"""


def spin_pair(srv, workspace, token, paths, limit=None):
    """Runs /spin on both paths at once; returns the two JSON answers.
    limit: loop iterations before giving up (for runs expected to see
    nothing; a few million still outlast the other request's start)."""
    name = "spin-%s" % token
    path = os.path.join(workspace.state, name)
    with open(path, "wb") as f:
        f.write(b"\0" * 16)
    os.chmod(path, 0o666)
    for p in paths:  # load the script in each group first: no spinning
        assert srv.get(p + "?warm=1").status == 200
    results = [None, None]

    def one(i):
        r = srv.get("%s?name=%s&me=%d%s" % (paths[i], name, i,
                                             "&limit=%d" % limit if limit else ""),
                    timeout=120)
        results[i] = (r.status, r.text)

    threads = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    out = []
    for status, text in results:
        assert status == 200, text
        out.append(json.loads(text))
    return out


def stop_clean(srv):
    """Graceful stop (each child finalizes Python and ends its groups, as
    on SIGTERM), then: no crash, no child killed for hanging at exit.
    Graceful because an immediate stop (SIGTERM) of these one-process
    servers with own-GIL groups crashed about 1 in 15 times inside Apache's
    event MPM (main thread, apr_os_sock_get while waking the listener,
    before pyhost's exit code runs): not understood yet, see issue 7."""
    assert srv.stop(signal.SIGWINCH, timeout=30) == 0
    log = srv.error_log()
    assert not CRASH_RE.findall(log), log[-5000:]
    assert "AH00045" not in log and "AH00046" not in log, log[-5000:]
    assert "PYH0016" not in log, log[-5000:]


@needs_own_gil
def test_groups_with_own_gil_run_python_in_parallel(short_server, workspace, token):
    srv = short_server("owngil", extra="WSGIPerInterpreterGIL On\n" + GROUPS)
    srv.start()
    a, b = spin_pair(srv, workspace, token, ("/spin/alpha", "/spin/beta"))
    assert a["pid"] == b["pid"], "the requests must share one process"
    # Each loop saw the other's counter move while it ran without ever
    # letting go of its GIL: the two ran at the same time.
    assert a["seen"] >= 1000 and b["seen"] >= 1000, (a, b)
    log = srv.error_log()
    assert "PYH0062: application group 'alpha' created with its own GIL" in log
    assert "PYH0062: application group 'beta' created with its own GIL" in log
    stop_clean(srv)


@needs_own_gil
def test_groups_sharing_the_gil_take_turns(short_server, workspace, token):
    # The same pair with WSGIPerInterpreterGIL Off: the check above can fail.
    srv = short_server("sharedgil", extra="WSGIPerInterpreterGIL Off\n" + GROUPS)
    srv.start()
    a, b = spin_pair(srv, workspace, token, ("/spin/alpha", "/spin/beta"),
                     limit=3_000_000)
    assert a["pid"] == b["pid"]
    assert min(a["seen"], b["seen"]) == 0, (a, b)
    assert "PYH0062" not in srv.error_log()
    stop_clean(srv)


@needs_own_gil
def test_main_interpreter_keeps_the_shared_gil(short_server, workspace, token):
    # A group with its own GIL runs beside the main interpreter, which keeps
    # the process-wide GIL (and stays the main interpreter).
    srv = short_server("owngil-main", extra="WSGIPerInterpreterGIL On\n" + GROUPS)
    srv.start()
    a, m = spin_pair(srv, workspace, token, ("/spin/alpha", "/spin/main"))
    assert a["seen"] >= 1000 and m["seen"] >= 1000, (a, m)
    info = srv.get("/grp/main").json()
    assert info["main"] in (True, None), info
    stop_clean(srv)


@needs_own_gil
def test_groups_with_own_gil_keep_separate_module_state(short_server):
    srv = short_server("owngil-state", extra="WSGIPerInterpreterGIL On\n" + GROUPS)
    srv.start()
    alpha = srv.get("/grp/alpha").json()
    alpha2 = srv.get("/grp/alpha2").json()
    beta = srv.get("/grp/beta").json()
    main = srv.get("/grp/main").json()
    assert alpha["pid"] == beta["pid"] == main["pid"]
    # a token set on sys in one group is seen by that group's other script,
    # and by no other interpreter
    assert alpha["token"] == alpha2["token"]
    assert len({alpha["token"], beta["token"], main["token"]}) == 3
    for info in (alpha, beta):
        assert info["main"] in (False, None), info
    # and again after more requests: the interpreters live on
    assert srv.get("/grp/beta").json()["token"] == beta["token"]
    stop_clean(srv)


@pytest.mark.parametrize("own_gil", [
    "Off", pytest.param("On", marks=needs_own_gil)])
def test_main_after_a_group_on_the_same_thread(short_server, own_gil):
    # One worker thread, and alpha made at child start (WSGIImportScript),
    # so the worker's first thread state is alpha's. CPython binds a
    # thread's first state for PyGILState, so main's request, given what
    # PyGILState_Ensure returns, ran inside alpha (and main's objects then
    # failed with "descriptor 'write' for 'pyhost.Request' objects doesn't
    # apply to a 'pyhost.Request' object").
    srv = short_server("thread-order", extra="WSGIPerInterpreterGIL %s\n" % own_gil + """
StartServers 1
ServerLimit 1
ThreadsPerChild 1
ThreadLimit 1
MinSpareThreads 1
MaxSpareThreads 2
MaxRequestWorkers 1
WSGIScriptAlias /grp/alpha @APPS@/groups.wsgi application-group=alpha
WSGIScriptAlias /grp/main @APPS@/groups.wsgi application-group=%{GLOBAL}
WSGIScriptAlias /env @APPS@/env.wsgi application-group=%{GLOBAL}
WSGIImportScript @APPS@/groups.wsgi application-group=alpha
""")
    srv.start()
    alpha = srv.get("/grp/alpha").json()
    main = srv.get("/grp/main").json()
    assert alpha["pid"] == main["pid"]
    assert alpha["token"] != main["token"], (alpha, main)
    assert main["main"] in (True, None) and alpha["main"] in (False, None), (alpha, main)
    assert srv.get("/env").status == 200  # the request type of main is main's
    assert srv.get("/grp/alpha").json()["token"] == alpha["token"]
    assert srv.get("/grp/main").json()["token"] == main["token"]
    stop_clean(srv)


def build_singlephase(workspace):
    src_dir = os.path.join(workspace.apps, "singlephase")
    cc = shutil.which(sysconfig.get_config_var("CC").split()[0]) or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler to build the single-phase test extension")
    out = os.path.join(src_dir, "pyhost_singlephase" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not os.path.exists(out):
        subprocess.run([cc, "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"],
                        "-o", out, os.path.join(src_dir, "pyhost_singlephase.c")],
                       check=True, capture_output=True, timeout=120)
        os.chmod(out, 0o755)
    return out


@needs_own_gil
def test_single_phase_extension_refused_with_own_gil_names_the_fix(short_server, workspace):
    build_singlephase(workspace)
    srv = short_server("owngil-ext", extra="WSGIPerInterpreterGIL On\n" + ONE_PROCESS + """
WSGIScriptAlias /ext/main @APPS@/singlephase.wsgi application-group=%{GLOBAL}
WSGIScriptAlias /ext/alpha @APPS@/singlephase.wsgi application-group=alpha
""")
    srv.start()
    r = srv.get("/ext/main")
    assert r.status == 200 and r.text == "single-phase loaded", r
    mark = srv.log_mark()
    assert srv.get("/ext/alpha").status == 500
    srv.wait_log_text(mark, r"PYH0017")
    text = srv.log_since(mark)
    assert "pyhost_singlephase" in text, text
    hint = [l for l in text.splitlines() if "PYH0017" in l]
    assert len(hint) == 1, text
    assert "sub-interpreter 'alpha', which has its own GIL" in hint[0], hint
    assert "WSGIApplicationGroup %{GLOBAL}" in hint[0], hint
    assert "WSGIPerInterpreterGIL Off" in hint[0], hint
    stop_clean(srv)


@pytest.mark.skipif(HAVE_OWN_GIL, reason="checks the error of a module built for "
                    "Python < 3.12; this is %s (CI's matrix runs it with 3.9-3.11)" % PY)
def test_per_interpreter_gil_on_old_python_is_a_startup_error(short_server):
    srv = short_server("owngil-old", extra="WSGIPerInterpreterGIL On\n" + GROUPS)
    rc, out = srv.config_test()
    assert rc != 0, out
    lines = [l for l in out.splitlines() if "PYH0060" in l]
    assert len(lines) == 1, out
    assert "needs Python 3.12 or newer" in lines[0], lines
    assert "built for Python %s" % PY in lines[0], lines


def test_per_interpreter_gil_off_is_accepted_everywhere(short_server):
    srv = short_server("owngil-off", extra="WSGIPerInterpreterGIL Off\n" + GROUPS)
    srv.start()
    assert srv.get("/grp/alpha").status == 200
    srv.stop()


def test_gil_directives_are_main_server_only(short_server):
    for d in ("WSGIPerInterpreterGIL Off", "WSGIFreeThreading Off"):
        srv = short_server("gil-vhost", extra="""
<VirtualHost 127.0.0.1:@PORT@>
    %s
</VirtualHost>
""" % d)
        rc, out = srv.config_test()
        assert rc != 0, out
        assert d.split()[0] in out, out


@pytest.mark.skipif(FREE_THREADED, reason="checks the error of a module built "
                    "for a Python with the GIL; this is %st" % PY)
def test_free_threading_on_needs_a_free_threaded_build(short_server):
    srv = short_server("ft-nobuild", extra="WSGIFreeThreading On\n" + GROUPS)
    rc, out = srv.config_test()
    assert rc != 0, out
    lines = [l for l in out.splitlines() if "PYH0061" in l]
    assert len(lines) == 1, out
    assert "needs a free-threaded Python" in lines[0], lines
    assert "built for Python %s with the GIL" % PY in lines[0], lines


@needs_free_threaded
def test_free_threading_runs_one_group_in_parallel(short_server, workspace, token):
    srv = short_server("ft-on", extra="WSGIFreeThreading On\n" + GROUPS)
    srv.start()
    a, b = spin_pair(srv, workspace, token, ("/spin/main", "/spin/main"))
    assert a["pid"] == b["pid"]
    assert a["gil_enabled"] is False and b["gil_enabled"] is False, (a, b)
    # two threads of one interpreter ran Python at the same time
    assert a["seen"] >= 1000 and b["seen"] >= 1000, (a, b)
    assert ("PYH0063: WSGIFreeThreading On: free-threaded Python %st started "
            "with the GIL off" % PY) in srv.error_log()
    stop_clean(srv)


@needs_free_threaded
def test_free_threaded_build_keeps_the_gil_by_default(short_server, workspace, token):
    srv = short_server("ft-off", extra=GROUPS)
    srv.start()
    a, b = spin_pair(srv, workspace, token, ("/spin/main", "/spin/main"),
                     limit=3_000_000)
    assert a["gil_enabled"] is True and b["gil_enabled"] is True, (a, b)
    assert min(a["seen"], b["seen"]) == 0, (a, b)
    assert "PYH0063" not in srv.error_log()
    stop_clean(srv)
