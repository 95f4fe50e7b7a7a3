"""How pyhost embeds Python in Apache: Python runs in the children only, a
graceful restart leaves the parent as it was, file_wrapper bodies are sent by
Apache from the descriptor, a mod_wsgi configuration runs unchanged (and the
same as under mod_wsgi itself when it is installed), and a wrong Python home
stops Apache with one exact line."""

import os
import stat
import subprocess
import sys
import sysconfig

import pytest

import harness
from harness import LOG_ID_RE, wait_for

PEERS = os.environ.get("PYHOST_PEERS", "/opt/pyhost/peers")

LEGACY_CONF = r"""
# As a mod_wsgi site would have it; only the LoadModule line differs.
WSGIPythonPath @APPS@/legacylib
WSGIScriptAlias /legacy @APPS@/legacy.wsgi
<Location /legacy>
    WSGIPassAuthorization On
    WSGIChunkedRequest On
</Location>
"""


def _vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def test_file_wrapper_is_sent_from_the_descriptor(short_server, workspace, mpm):
    srv = short_server("filebucket", mpm=mpm, extra=(
        "WSGIScriptAlias /fb @APPS@/filebucket.wsgi\n"
        "<Location /fb>\n    EnableSendfile On\n</Location>\n"))
    srv.start()
    blob = workspace.blob_bytes()
    r = srv.get("/fb")
    assert r.status == 200, r
    assert r.body == blob
    assert r.header("Content-Length") == str(len(blob))
    # From the file object's position, as PEP 3333 says.
    r = srv.get("/fb?1000")
    assert r.status == 200 and r.body == blob[1000:]
    assert not LOG_ID_RE.search(srv.error_log()), srv.error_log()


def test_python_runs_in_children_only_and_restarts_do_not_grow_the_parent(
        short_server, mpm):
    srv = short_server("pids", mpm=mpm,
                       extra="WSGIScriptAlias /pids @APPS@/pids.wsgi\n")
    srv.start()
    parent = srv.proc.pid
    info = srv.get("/pids").json()
    assert info["pid"] != parent and info["ppid"] == parent
    before = _vmrss_kb(parent)
    for _ in range(8):
        srv.graceful_restart()
        assert srv.get("/pids").status == 200
    grown = _vmrss_kb(parent) - before
    # An interpreter started (and leaked) in the parent would cost megabytes
    # per restart; Apache's own pools move by a few kB.
    assert grown < 1024, "parent grew by %d kB over 8 graceful restarts" % grown
    assert not harness.CRASH_RE.search(srv.error_log()), srv.error_log()


def _legacy_answers(srv):
    srv.start()
    out = []
    r = srv.get("/legacy/a/b", headers={"Authorization": "Basic dTpw"})
    out.append((r.status, r.json()))
    conn = srv.connection()
    r = harness.do_request(conn, "POST", "/legacy/up",
                           body=iter([b"x" * 5000, b"y" * 3000]),
                           encode_chunked=True,
                           headers={"Transfer-Encoding": "chunked"})
    conn.close()
    out.append((r.status, r.json()))
    srv.stop()
    return out


def test_mod_wsgi_config_runs_unchanged(short_server):
    answers = _legacy_answers(short_server("legacy", extra=LEGACY_CONF))
    (s1, get), (s2, post) = answers
    assert s1 == 200 and s2 == 200
    assert get["helper"] == "legacy helper from WSGIPythonPath"
    assert get["auth"] == "Basic dTpw"
    assert (get["script_name"], get["path_info"]) == ("/legacy", "/a/b")
    assert post["body_len"] == 8000 and post["body_head"] == "x" * 16
    assert post["terminated"] is True

    express = os.path.join(PEERS, "bin", "mod_wsgi-express")
    if not os.path.exists(express):
        pytest.skip("mod_wsgi not installed in %s: compared with the spec only"
                    % PEERS)
    so = subprocess.run([express, "module-location"], check=True,
                        capture_output=True, text=True).stdout.strip()
    theirs = _legacy_answers(short_server(
        "legacy-modwsgi", extra="WSGIApplicationGroup %{GLOBAL}\n" + LEGACY_CONF,
        module=("wsgi_module", so), python_home=PEERS))
    # mod_wsgi sets wsgi.input_terminated only for chunked bodies.
    for (_, ours), (_, peer) in zip(answers, theirs):
        ours.pop("terminated"), peer.pop("terminated")
    assert answers == theirs


def _fake_home(workspace, name, version=None, venv_version=None, mode=0o755):
    home = os.path.join(workspace.root, name)
    if venv_version:
        os.makedirs(os.path.join(home, "bin"), exist_ok=True)
        with open(os.path.join(home, "pyvenv.cfg"), "w") as f:
            f.write("home = /usr/bin\nversion = %s\n" % venv_version)
    if version:
        lib = os.path.join(home, "lib", "python" + version)
        os.makedirs(lib, exist_ok=True)
        open(os.path.join(lib, "os.py"), "w").close()
    os.makedirs(home, exist_ok=True)
    harness._chmod_world_readable(home)
    os.chmod(home, mode)
    return home


def _startup_error(short_server, name, home):
    srv = short_server(name, extra="WSGIScriptAlias /env @APPS@/env.wsgi\n",
                       python_home=home)
    srv.start(wait=False)
    assert wait_for(lambda: not srv.running(), timeout=20), \
        "Apache started with WSGIPythonHome %s" % home
    lines = [l for l in srv.error_log().splitlines() if LOG_ID_RE.search(l)]
    assert len(lines) == 1, lines
    return lines[0][lines[0].index("PYH"):]


THIS = "%d.%d" % sys.version_info[:2]
# The stdlib directory's version: "3.13t" on a free-threaded build.
LIBV = THIS + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")


def test_home_of_another_python_version(short_server, workspace):
    home = _fake_home(workspace, "home-399", version="3.99")
    assert _startup_error(short_server, "home399", home) == (
        "PYH0002: WSGIPythonHome '%s' is Python 3.99 but mod_pyhost was built "
        "for Python %s; rebuild pyhost with that Python (pip install mod-pyhost) "
        "or point WSGIPythonHome at a Python %s prefix or venv"
        % (home, LIBV, LIBV))


def test_venv_of_another_python_version(short_server, workspace):
    home = _fake_home(workspace, "venv-399", venv_version="3.99.1")
    assert _startup_error(short_server, "venv399", home) == (
        "PYH0002: WSGIPythonHome '%s' is a Python 3.99.1 venv but mod_pyhost "
        "was built for Python %s; rebuild pyhost inside that venv (pip install "
        "mod-pyhost) or use a Python %s venv" % (home, THIS, THIS))


def test_home_that_is_not_a_python(short_server, workspace):
    home = _fake_home(workspace, "not-python")
    assert _startup_error(short_server, "notpy", home) == (
        "PYH0001: WSGIPythonHome '%s' is not a Python installation (no "
        "%s/lib/python%s/os.py); point WSGIPythonHome at the prefix of Python "
        "%s, the Python mod_pyhost was built for, or at a venv made from it"
        % (home, home, LIBV, THIS))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run children as www-data")
def test_home_the_apache_user_cannot_read(short_server, workspace):
    home = _fake_home(workspace, "private-home", version=LIBV, mode=0o700)
    user = harness.run_user().split()[1]
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert _startup_error(short_server, "private", home) == (
        "PYH0003: Apache's User '%s' cannot read the Python installation '%s' "
        "('%s' is mode 0700); use a Python or venv outside it (e.g. "
        "/usr/bin/python3 -m venv /opt/venv) or grant that user read access"
        % (user, home, home))


def test_uv_made_venv_as_python_home(short_server, workspace):
    """A venv made by uv (its pyvenv.cfg says version_info, not version)
    works as WSGIPythonHome, and as a daemon group's python-home=."""
    uv = os.path.join(os.path.dirname(sys.executable), "uv")
    if not os.path.exists(uv):
        pytest.fail("uv is not installed in the test venv (pip install '.[test]')")
    venv = os.path.join(workspace.root, "uv-venv")
    base = os.path.realpath(os.path.join(sys.base_prefix, "bin", "python%s" % THIS))
    subprocess.run([uv, "venv", "--no-python-downloads", "--python", base, venv],
                   check=True, capture_output=True, timeout=120)
    harness._chmod_world_readable(venv)
    with open(os.path.join(venv, "pyvenv.cfg")) as f:
        cfg = f.read()
    assert "uv = " in cfg, cfg
    srv = short_server("uvvenv", extra=(
        "WSGIScriptAlias /e @APPS@/daemon.wsgi\n"
        "WSGIDaemonProcess uvd processes=1 threads=2 python-home=%s\n"
        "WSGIScriptAlias /d @APPS@/daemon.wsgi process-group=uvd\n" % venv),
        python_home=venv)
    srv.start()
    for path in ("/e/info", "/d/info"):
        r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(srv.get(path)),
                     timeout=15)
        assert r is not None, srv.error_log()[-3000:]
        assert r.json()["prefix"] == venv, r.json()
