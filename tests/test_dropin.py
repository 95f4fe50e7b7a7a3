"""pyhost as a drop-in for mod_wsgi configurations (issue 15): <IfModule>
guards, refusing to share a server with mod_wsgi, configtest running the
startup checks, mod_wsgi's option syntax, and every other mod_wsgi 6
directive and WSGIDaemonProcess option either applied or accepted with one
PYH0111 line. Each test runs a real Apache with the real module."""

import json
import os
import re
import subprocess
import sys

import pytest

from harness import MPMS, Apache, Workspace

MOD_WSGI_SO = "/usr/lib/apache2/modules/mod_wsgi.so"


def _mpms():
    # as conftest's: the MPMs PYHOST_TEST_MPMS selects, for module-scoped servers
    wanted = os.environ.get("PYHOST_TEST_MPMS")
    return [m.strip() for m in wanted.split(",") if m.strip() in MPMS] if wanted else list(MPMS)
INFO = "@APPS@/dropin_info.wsgi"


def started(short_server, name, extra, **kw):
    srv = short_server(name, extra=extra, **kw)
    srv.start(timeout=30)
    return srv


def config_test(short_server, name, extra, **kw):
    return short_server(name, extra=extra, **kw).config_test()


# -- item 9: <IfModule mod_wsgi.c> / <IfModule wsgi_module> -------------------

GUARDED = """
<IfModule mod_wsgi.c>
    WSGIScriptAlias /by-file @APPS@/dropin_info.wsgi
</IfModule>
<IfModule wsgi_module>
    WSGIScriptAlias /by-symbol @APPS@/dropin_info.wsgi
</IfModule>
<IfModule !mod_wsgi.c>
    Alias /not-wsgi @WORK@/htdocs
</IfModule>
"""


def test_ifmodule_guards_see_pyhost(short_server, mpm):
    srv = started(short_server, "ifmod", GUARDED, mpm=mpm)
    for path in ("/by-file", "/by-symbol"):
        r = srv.get(path)
        assert r.status == 200, (path, r)
        assert "optimize" in r.json()
    assert srv.get("/not-wsgi/ping.txt").status == 404


def test_ifmodule_guards_hold_across_graceful_restart(short_server, mpm):
    # The stand-in module records are removed with the configuration and
    # made again: a stale one would crash or hide the guards on restart.
    srv = started(short_server, "ifmod-restart", GUARDED, mpm=mpm)
    srv.graceful_restart()
    for path in ("/by-file", "/by-symbol"):
        assert srv.get(path).status == 200, path
    assert "Segmentation fault" not in srv.error_log()


# -- item 5: mod_wsgi loaded too ---------------------------------------------

needs_mod_wsgi = pytest.mark.skipif(not os.path.exists(MOD_WSGI_SO),
                                    reason="Debian's libapache2-mod-wsgi-py3 is not installed")
BOTH = "LoadModule wsgi_module %s\nWSGIScriptAlias /app @APPS@/dropin_info.wsgi\n" % MOD_WSGI_SO
REFUSAL = ("PYH0110: mod_wsgi and mod_pyhost are both loaded; they cannot share a server "
           "(both embed Python): remove one of the two LoadModule lines")


@needs_mod_wsgi
def test_mod_wsgi_loaded_too_fails_configtest(short_server):
    rc, out = config_test(short_server, "both-t", BOTH)
    assert rc != 0, out
    assert REFUSAL in out, out
    assert "Syntax OK" not in out


@needs_mod_wsgi
def test_mod_wsgi_loaded_too_refuses_to_start(short_server, mpm):
    srv = short_server("both", extra=BOTH, mpm=mpm)
    with pytest.raises(Exception):
        srv.start(timeout=20)
    log = srv.error_log()
    assert log.count("PYH0110") == 1, log
    assert REFUSAL in log
    assert "Fatal Python error" not in log + srv._stdout_log()


# -- item 4: apache2 -t runs the startup checks -------------------------------

def _fake_home(workspace, name, version=None):
    home = os.path.join(workspace.root, name)
    os.makedirs(home, exist_ok=True)
    if version:
        lib = os.path.join(home, "lib", "python" + version)
        os.makedirs(lib, exist_ok=True)
        open(os.path.join(lib, "os.py"), "w").close()
    return home


def test_configtest_fails_for_a_missing_python_home(short_server, workspace):
    home = os.path.join(workspace.root, "no-such-home")
    rc, out = config_test(short_server, "t-nohome", "", python_home=home)
    assert rc != 0, out
    assert "PYH0001: WSGIPythonHome '%s' is not a directory" % home in out, out


def test_configtest_fails_for_a_home_that_is_not_a_python(short_server, workspace):
    home = _fake_home(workspace, "t-notpy")
    rc, out = config_test(short_server, "t-notpy", "", python_home=home)
    assert rc != 0 and "PYH0001: WSGIPythonHome '%s' is not a Python installation" % home in out, out


def test_configtest_fails_for_another_python_version(short_server, workspace):
    home = _fake_home(workspace, "t-py399", version="3.99")
    rc, out = config_test(short_server, "t-py399", "", python_home=home)
    assert rc != 0 and "PYH0002: WSGIPythonHome '%s' is Python 3.99" % home in out, out


def test_configtest_fails_for_an_undefined_process_group(short_server):
    rc, out = config_test(short_server, "t-ghost",
                          "WSGIScriptAlias /g @APPS@/dropin_info.wsgi process-group=ghost\n")
    assert rc != 0, out
    assert "PYH0030: WSGIScriptAlias /g: process-group=ghost names no WSGIDaemonProcess" in out


def test_configtest_passes_a_good_config(short_server):
    rc, out = config_test(short_server, "t-good", "WSGIScriptAlias /g @APPS@/dropin_info.wsgi\n")
    assert rc == 0 and "Syntax OK" in out, out


# -- item 9: mod_wsgi's option syntax, socket prefix, huge timeouts ------------

def test_quoted_option_values_lose_their_quotes(short_server, mpm):
    srv = started(short_server, "quoted", mpm=mpm, extra=
                  "WSGIDaemonProcess qgrp processes=1 threads=2 display-name='%{GROUP}' "
                  "python-path=\"@APPS@/pylib1\"\n"
                  "WSGIScriptAlias /q @APPS@/dropin_info.wsgi process-group='qgrp' "
                  "application-group=\"%{GLOBAL}\"\n")
    r = srv.get("/q")
    assert r.status == 200, r
    assert r.json()["process_group"] == "qgrp"


def test_huge_socket_timeout_is_taken_as_mod_wsgi_does(short_server):
    srv = started(short_server, "bigtimeout",
                  "WSGIDaemonProcess tgrp processes=1 threads=2 socket-timeout=2147483647 "
                  "request-timeout=99999999999\n"
                  "WSGIScriptAlias /t @APPS@/dropin_info.wsgi process-group=tgrp\n")
    assert srv.get("/t").status == 200


def test_relative_socket_prefix_is_relative_to_server_root(short_server):
    srv = short_server("sockprefix",
                       extra="WSGISocketPrefix run/dropin-wsgi\n"
                             "WSGIDaemonProcess sgrp processes=1 threads=2\n"
                             "WSGIScriptAlias /s @APPS@/dropin_info.wsgi process-group=sgrp\n")
    srv.start(timeout=30)
    assert srv.get("/s").status == 200
    # ServerRoot is srv.dir; the runtime dir happens to be srv.dir/run too,
    # so look for a path that only ServerRoot-relative resolution makes.
    socks = [n for n in os.listdir(os.path.join(srv.dir, "run")) if n.startswith("dropin-wsgi")]
    assert socks, os.listdir(os.path.join(srv.dir, "run"))


def test_relative_socket_prefix_not_under_runtime_dir(short_server):
    # A prefix whose directory exists under ServerRoot but not under the
    # runtime directory (DefaultRuntimeDir): mod_wsgi resolves against
    # ServerRoot, and so must we, or the daemon socket cannot be made.
    srv = short_server("sockprefix2", extra="")
    os.makedirs(os.path.join(srv.dir, "sockets"), exist_ok=True)
    os.chmod(os.path.join(srv.dir, "sockets"), 0o777)
    srv.extra = ("WSGISocketPrefix sockets/wsgi\n"
                 "WSGIDaemonProcess sgrp processes=1 threads=2\n"
                 "WSGIScriptAlias /s @APPS@/dropin_info.wsgi process-group=sgrp\n")
    srv.start(timeout=30)
    assert srv.get("/s").status == 200
    assert any(n.startswith("wsgi") for n in os.listdir(os.path.join(srv.dir, "sockets")))


# -- item 1: Python settings -------------------------------------------------

PY_SETTINGS = """
WSGIPythonOptimize 2
WSGIPythonHashSeed 12345
WSGIPythonWarnings ignore::DeprecationWarning
WSGIPythonWarnings error::ResourceWarning
WSGIDontWriteBytecode On
WSGISwitchInterval 0.0125
WSGIRestrictStdout On
WSGIRestrictStdin On
WSGIScriptAlias /info @APPS@/dropin_info.wsgi
"""


@pytest.fixture
def py_settings(short_server, mpm):
    srv = started(short_server, "pysettings", PY_SETTINGS, mpm=mpm)
    r = srv.get("/info")
    assert r.status == 200, r
    return r.json()


def _hash_with_seed(seed):
    return int(subprocess.run(
        [sys.executable, "-c", "print(hash('pyhost-dropin'))"],
        env=dict(os.environ, PYTHONHASHSEED=str(seed)), capture_output=True,
        text=True, check=True).stdout)


def test_python_optimize(py_settings):
    assert py_settings["optimize"] == 2


def test_python_hash_seed(py_settings):
    assert py_settings["hash"] == _hash_with_seed(12345)


def test_python_warnings(py_settings):
    assert py_settings["warnoptions"] == ["ignore::DeprecationWarning", "error::ResourceWarning"]


def test_dont_write_bytecode(py_settings):
    assert py_settings["dont_write_bytecode"] is True


def test_switch_interval(py_settings):
    assert abs(py_settings["switchinterval"] - 0.0125) < 1e-9


def test_restrict_stdout(py_settings):
    assert py_settings["stdout"] == "OSError: sys.stdout access restricted by mod_wsgi"


def test_restrict_stdin(py_settings):
    assert py_settings["stdin"] == "OSError: sys.stdin access restricted by mod_wsgi"


def test_python_defaults_without_the_directives(short_server):
    srv = started(short_server, "pydefaults", "WSGIScriptAlias /info @APPS@/dropin_info.wsgi\n")
    info = srv.get("/info").json()
    assert info["optimize"] == 0
    assert info["stdout"] == "ok" and info["stdin"] == "ok"
    assert info["warnoptions"] == []


@pytest.mark.parametrize("line,needle", [
    ("WSGIPythonOptimize 3", "WSGIPythonOptimize takes 0, 1 or 2, not '3'"),
    ("WSGIPythonHashSeed -1", "WSGIPythonHashSeed takes 'random' or a number"),
    ("WSGIDontWriteBytecode maybe", "WSGIDontWriteBytecode takes On or Off"),
    ("WSGISwitchInterval 0", "WSGISwitchInterval takes a number of seconds > 0"),
    ("WSGIRestrictStdout yes", "WSGIRestrictStdout takes On or Off"),
])
def test_python_settings_reject_bad_values(short_server, line, needle):
    rc, out = config_test(short_server, "badpy", line + "\n")
    assert rc != 0 and needle in out, out


# -- item 1: directives accepted with one info line ------------------------------

ACCEPTED = {
    "WSGISocketRotation": "Off",
    "WSGIAcceptMutex": "default",
    "WSGIVerboseDebugging": "Off",
    "WSGIPythonEggs": "/tmp/eggs",
    "WSGIDestroyInterpreter": "On",
    "WSGILazyInitialization": "On",
    "WSGICaseSensitivity": "On",
    "WSGIEnableSendfile": "On",
    "WSGITelemetryService": "unix:/tmp/none",
    "WSGITelemetryOptions": "None",
    "WSGISlowRequests": "5",
}

# mod_wsgi 6's WSGIDaemonProcess options that pyhost does not act on.
DAEMON_ACCEPTED = {
    "python-eggs": "/tmp/eggs",
    "deadlock-timeout": "300", "interrupt-timeout": "0",
    "eviction-timeout": "10", "header-buffer-size": "32768",
    "response-buffer-size": "65536", "response-socket-timeout": "10",
    "response-flush-delay": "0",
}


@pytest.fixture(scope="module", params=_mpms())
def accepted_server(request):
    ws = Workspace()
    extra = "".join("%s %s\n" % kv for kv in ACCEPTED.items())
    extra += "WSGIDaemonProcess grp processes=1 threads=2 %s\n" % " ".join(
        "%s=%s" % kv for kv in DAEMON_ACCEPTED.items())
    extra += "WSGIScriptAlias /acc @APPS@/dropin_info.wsgi process-group=grp\n"
    srv = Apache(ws, "accepted", mpm=request.param, extra=extra)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def _notes(srv):
    return [line for line in srv.error_log().splitlines() if "PYH0111" in line]


def test_accepted_server_serves(accepted_server):
    r = accepted_server.get("/acc")
    assert r.status == 200, r
    assert r.json()["process_group"] == "grp"


@pytest.mark.parametrize("directive", sorted(ACCEPTED))
def test_directive_accepted_with_one_info_line(accepted_server, directive):
    lines = [ln for ln in _notes(accepted_server)
             if re.search(r"PYH0111: %s accepted and ignored: .+ \(.*httpd\.conf:\d+\)" % directive, ln)]
    assert len(lines) == 1, _notes(accepted_server)
    assert "[pyhost:info]" in lines[0]


@pytest.mark.parametrize("option", sorted(DAEMON_ACCEPTED))
def test_daemon_option_accepted_with_one_info_line(accepted_server, option):
    lines = [ln for ln in _notes(accepted_server)
             if "PYH0111: WSGIDaemonProcess grp: %s=%s accepted and ignored: "
             % (option, DAEMON_ACCEPTED[option]) in ln]
    assert len(lines) == 1, _notes(accepted_server)


# -- item 2: WSGIScriptAlias to a directory -------------------------------------

@pytest.mark.parametrize("alias", ["/wsgi/ @APPS@/dropin_dir/", "/wsgi @APPS@/dropin_dir"])
def test_script_alias_to_a_directory(short_server, workspace, alias, mpm):
    srv = started(short_server, "diralias", "WSGIScriptAlias %s\n" % alias, mpm=mpm)
    d = os.path.join(workspace.apps, "dropin_dir")
    r = srv.get("/wsgi/hello.wsgi")
    assert r.status == 200, r
    assert r.json() == {"file": os.path.join(d, "hello.wsgi"), "SCRIPT_NAME": "/wsgi/hello.wsgi",
                        "PATH_INFO": "", "SCRIPT_FILENAME": os.path.join(d, "hello.wsgi")}
    r = srv.get("/wsgi/other.wsgi/a/b")
    assert r.status == 200, r
    assert r.json()["file"] == os.path.join(d, "other.wsgi")
    assert (r.json()["SCRIPT_NAME"], r.json()["PATH_INFO"]) == ("/wsgi/other.wsgi", "/a/b")
    assert srv.get("/wsgi/missing.wsgi").status == 404
    assert srv.get("/wsgi/").status == 404


# -- item 7: tracebacks, one log line per traceback line --------------------------

FAIL_CONF = ("WSGIScriptAlias /fail @APPS@/dropin_fail.wsgi\n"
             "WSGIDaemonProcess fgrp processes=1 threads=2\n"
             "WSGIScriptAlias /faild @APPS@/dropin_fail.wsgi process-group=fgrp\n")


@pytest.mark.parametrize("path", ["/fail", "/faild"])
def test_traceback_is_one_line_per_line_grouped_by_log_id(short_server, workspace, path, mpm):
    srv = started(short_server, "tb", FAIL_CONF, mpm=mpm)
    mark = srv.log_mark()
    assert srv.get(path).status == 500
    # (a daemon's "ready" info line may land after the mark: not a report)
    entries = [e for e in srv.wait_log_entries(mark, count=1, timeout=5) if ":info]" not in e]
    assert len(entries) == 1, entries  # exactly one failure report
    head = entries[0]
    m = re.search(r"PYH0100: exception in WSGI app for GET %s \[([^\]]+)\]: "
                  r"Traceback \(most recent call last\):$" % path, head)
    assert m, head
    gid = m.group(1)
    lines = [ln for ln in srv.log_since(mark).splitlines() if "[%s]" % gid in ln]
    assert "\\n" not in "".join(lines)
    body = [ln.split("[%s] " % gid, 1)[1] for ln in lines[1:]]
    script = os.path.join(workspace.apps, "dropin_fail.wsgi")
    # The app's frames only: nothing of pyhost's loading code.
    files = [b.strip() for b in body if b.strip().startswith("File ")]
    assert files == ['File "%s", line 9, in application' % script] + \
        ['File "%s", line 5, in helper' % script] * 2 + \
        ['File "%s", line 4, in helper' % script], body
    assert body[-1] == "ValueError: dropin failure marker"
    # every line of the failure is tagged with the request's client too
    assert all("[client " in ln or "[remote " in ln for ln in lines)


def test_concurrent_tracebacks_keep_their_own_ids(short_server, mpm):
    import threading
    srv = started(short_server, "tb-many", FAIL_CONF, mpm=mpm)
    mark = srv.log_mark()
    threads = [threading.Thread(target=srv.get, args=("/fail",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    entries = [e for e in srv.wait_log_entries(mark, count=6, timeout=10) if ":info]" not in e]
    assert len(entries) == 6, entries
    ids = [re.search(r"\[([^\]]+)\]: Traceback", e).group(1) for e in entries]
    assert len(set(ids)) == 6, ids
    text = srv.log_since(mark)
    for gid in ids:
        group = [ln for ln in text.splitlines() if "[%s]" % gid in ln]
        assert group[-1].endswith("[%s] ValueError: dropin failure marker" % gid), group


# -- item 5: `pyhost check` reports mod_wsgi loaded with pyhost ---------------------

def _apache_root(tmp, loads):
    enabled = os.path.join(tmp, "mods-enabled")
    os.makedirs(enabled)
    for name, line in loads.items():
        with open(os.path.join(enabled, name + ".load"), "w") as f:
            f.write(line + "\n")
    return tmp


def test_check_reports_mod_wsgi_and_pyhost_both_loaded(tmp_path):
    from pyhost import checks
    root = _apache_root(str(tmp_path), {
        "wsgi": "LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so",
        "pyhost": "LoadModule pyhost_module /usr/lib/apache2/modules/mod_pyhost.so"})
    [line] = checks.check_mod_wsgi(roots=[root])
    assert not line.ok
    assert "both loaded" in line.text and "PYH0110" in line.text and "a2dismod wsgi" in line.text
    assert str(line).startswith("mod_wsgi FAIL")


def test_check_notes_mod_wsgi_loaded_alone(tmp_path):
    from pyhost import checks
    root = _apache_root(str(tmp_path), {
        "wsgi": "LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so",
        "alias": "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so"})
    [line] = checks.check_mod_wsgi(roots=[root])
    assert line.ok and "mod_wsgi is loaded" in line.text


def test_check_prints_the_mod_wsgi_line():
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pyhost"), "check"],
                       capture_output=True, text=True, timeout=120)
    assert re.search(r"^mod_wsgi ", p.stdout, re.M), p.stdout


# -- item 1: auth scripts (AuthBasicProvider wsgi, Require wsgi-group) -----------

def _auth_conf():
    from harness import apache_modules_dir
    moddir = apache_modules_dir()
    mods = "".join("<IfModule !%s_module>\n    LoadModule %s_module %s/mod_%s.so\n</IfModule>\n"
                   % (m, m, moddir, m)
                   for m in ("authn_core", "authz_user", "auth_basic", "auth_digest"))
    return mods + """
WSGIScriptAlias /secret @APPS@/env.wsgi
<Location /secret>
    AuthType Basic
    AuthName "Top Secret"
    AuthBasicProvider wsgi
    WSGIAuthUserScript @APPS@/dropin_auth.wsgi
    Require valid-user
</Location>
WSGIScriptAlias /agents @APPS@/env.wsgi
<Location /agents>
    AuthType Basic
    AuthName "Agents"
    AuthBasicProvider wsgi
    WSGIAuthUserScript @APPS@/dropin_auth.wsgi application-group=authgrp
    WSGIAuthGroupScript @APPS@/dropin_auth.wsgi application-group=authgrp
    Require wsgi-group secret-agents
</Location>
WSGIScriptAlias /digest @APPS@/env.wsgi
<Location /digest>
    AuthType Digest
    AuthName "Digest Realm"
    AuthDigestProvider wsgi
    WSGIAuthUserScript @APPS@/dropin_auth.wsgi
    Require valid-user
</Location>
WSGIScriptAlias /nonauth @APPS@/env.wsgi
<Location /nonauth>
    AuthType Basic
    AuthName "Agents"
    AuthBasicProvider wsgi
    WSGIAuthUserScript @APPS@/dropin_auth.wsgi
    WSGIAuthGroupScript @APPS@/dropin_auth.wsgi
    WSGIGroupAuthoritative Off
    <RequireAll>
        Require wsgi-group secret-agents
        Require user clerk
    </RequireAll>
</Location>
WSGIScriptAlias /authoritative @APPS@/env.wsgi
<Location /authoritative>
    AuthType Basic
    AuthName "Agents"
    AuthBasicProvider wsgi
    WSGIAuthUserScript @APPS@/dropin_auth.wsgi
    WSGIAuthGroupScript @APPS@/dropin_auth.wsgi
    <RequireAll>
        Require wsgi-group secret-agents
        Require user clerk
    </RequireAll>
</Location>
WSGIScriptAlias /access @APPS@/env.wsgi
<Location /access>
    WSGIAccessScript @APPS@/dropin_auth.wsgi
</Location>
"""


@pytest.fixture(scope="module", params=_mpms())
def auth_server(request):
    ws = Workspace()
    srv = Apache(ws, "auth", mpm=request.param, extra=_auth_conf())
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def _basic(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()}


def test_auth_user_script_grants_the_right_password(auth_server):
    r = auth_server.get("/secret", headers=_basic("spy", "secret"))
    assert r.status == 200, r
    env = r.json()
    assert env["REMOTE_USER"] == "spy" and env["AUTH_TYPE"] == "Basic"


@pytest.mark.parametrize("user,password", [("spy", "wrong"), ("nobody", "x")])
def test_auth_user_script_denies(auth_server, user, password):
    r = auth_server.get("/secret", headers=_basic(user, password))
    assert r.status == 401
    assert auth_server.get("/secret").status == 401


def test_auth_user_script_that_raises_is_a_500_with_its_traceback(auth_server):
    mark = auth_server.log_mark()
    r = auth_server.get("/secret", headers=_basic("boom", "x"))
    assert r.status == 500
    entries = auth_server.wait_log_entries(mark, count=1)
    assert any("PYH0120: exception in check_password()" in e for e in entries), entries
    assert "RuntimeError: auth script failure marker" in auth_server.log_since(mark)


def test_require_wsgi_group(auth_server):
    assert auth_server.get("/agents", headers=_basic("spy", "secret")).status == 200
    # right password, wrong group
    assert auth_server.get("/agents", headers=_basic("clerk", "paper")).status == 401


def test_digest_provider_uses_get_realm_hash(auth_server):
    import hashlib

    def md5(s):
        return hashlib.md5(s.encode()).hexdigest()
    r = auth_server.get("/digest")
    assert r.status == 401
    chal = dict(re.findall(r'(\w+)="([^"]*)"', r.header("WWW-Authenticate")))
    realm, nonce, uri = chal["realm"], chal["nonce"], "/digest"

    def answer(password):
        ha1, ha2 = md5("spy:%s:%s" % (realm, password)), md5("GET:%s" % uri)
        resp = md5("%s:%s:00000001:0a4f113b:auth:%s" % (ha1, nonce, ha2))
        return {"Authorization": 'Digest username="spy", realm="%s", nonce="%s", uri="%s", '
                'qop=auth, nc=00000001, cnonce="0a4f113b", response="%s", algorithm=MD5'
                % (realm, nonce, uri, resp)}
    assert auth_server.get(uri, headers=answer("secret")).status == 200
    assert auth_server.get(uri, headers=answer("wrong")).status == 401


def test_access_script(auth_server):
    assert auth_server.get("/access").status == 200
    assert auth_server.get("/access", headers={"X-Agent": "blocked"}).status == 403


def test_group_authoritative_off_leaves_the_decision_to_others(auth_server):
    # clerk is not in secret-agents: authoritative (the default) denies;
    # Off makes the group check neutral, and "Require user clerk" decides.
    assert auth_server.get("/authoritative", headers=_basic("clerk", "paper")).status == 401
    assert auth_server.get("/nonauth", headers=_basic("clerk", "paper")).status == 200


# -- item 8: the importable mod_wsgi module; item 3: HTTPS makes url_scheme https --

MODWSGI_CONF = """
WSGIScriptAlias /embedded @APPS@/dropin_modwsgi.wsgi
WSGIScriptAlias /sub @APPS@/dropin_modwsgi.wsgi application-group=subgrp
WSGIDaemonProcess mgrp processes=2 threads=3
WSGIScriptAlias /daemon @APPS@/dropin_modwsgi.wsgi process-group=mgrp application-group=%{GLOBAL}
SetEnvIf X-Forwarded-Proto ^https$ HTTPS=on
"""


@pytest.fixture(scope="module", params=_mpms())
def modwsgi_server(request):
    ws = Workspace()
    srv = Apache(ws, "modwsgi", mpm=request.param, extra=MODWSGI_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


def test_mod_wsgi_module_embedded(modwsgi_server):
    m = modwsgi_server.get("/embedded").json()["module"]
    # the harness's MPM settings: MaxRequestWorkers 16 in 4-thread processes
    # (event, worker), or 8 single-threaded ones (prefork)
    procs, threads = (8, 1) if modwsgi_server.mpm == "prefork" else (4, 4)
    assert m == {"process_group": "", "application_group": "", "maximum_processes": procs,
                 "threads_per_process": threads, "version": [6, 0, 0]}


def test_mod_wsgi_module_sub_interpreter(modwsgi_server):
    m = modwsgi_server.get("/sub").json()["module"]
    assert m["application_group"] == "subgrp" and m["process_group"] == ""


def test_mod_wsgi_module_daemon(modwsgi_server):
    r = modwsgi_server.get("/daemon").json()
    assert r["module"] == {"process_group": "mgrp", "application_group": "",
                           "maximum_processes": 2, "threads_per_process": 3,
                           "version": [6, 0, 0]}
    assert r["environ"]["mod_wsgi.process_group"] == "mgrp"


@pytest.mark.parametrize("path", ["/embedded", "/daemon"])
def test_https_variable_makes_url_scheme_https(modwsgi_server, path):
    plain = modwsgi_server.get(path).json()["environ"]
    assert plain["wsgi.url_scheme"] == "http" and plain["HTTPS"] is None
    proxied = modwsgi_server.get(path, headers={"X-Forwarded-Proto": "https"}).json()["environ"]
    assert proxied["HTTPS"] == "on"
    assert proxied["wsgi.url_scheme"] == "https"


# -- item 6: a body over LimitRequestBody is one clean 413 ----------------------------

LIMIT_CONF = """
WSGIScriptAlias /limited @APPS@/input.wsgi
WSGIScriptAlias /limited-catch @APPS@/dropin_catch.wsgi
<LocationMatch ^/limited>
    LimitRequestBody 1000
    WSGIChunkedRequest On
</LocationMatch>
"""


@pytest.mark.parametrize("path", ["/limited", "/limited-catch"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_limit_request_body_is_one_clean_413(short_server, framing, path, mpm):
    srv = started(short_server, "limit", LIMIT_CONF, mpm=mpm)
    body = b"x" * 5000
    if framing == "chunked":
        head = b"Transfer-Encoding: chunked\r\n"
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        head = b"Content-Length: %d\r\n" % len(body)
        payload = body
    r = srv.raw(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head
                + b"Connection: close\r\n\r\n" + payload, timeout=15)
    assert r.status == 413, r.raw[:300]
    assert r.raw.count(b"HTTP/1.1 ") == 1, r.raw
    assert b"Request Entity Too Large" in r.body
    assert b"Internal Server Error" not in r.raw and b"</html>" == r.body.rstrip()[-7:]
    assert r.body.count(b"<html>") == 1
    with open(os.path.join(srv.logs, "access.log")) as f:
        lines = [ln for ln in f if "POST %s " % path in ln]
    assert len(lines) == 1 and '" 413 ' in lines[0], lines


# -- item 3: WSGITrustedProxyHeaders / WSGITrustedProxies ---------------------------

PROXY_CONF = """
WSGIDaemonProcess pxgrp processes=1 threads=2
WSGIScriptAlias /px @APPS@/env.wsgi
WSGIScriptAlias /pxd @APPS@/env.wsgi process-group=pxgrp
<LocationMatch ^/pxd?$>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Port X-Forwarded-Proto
    WSGITrustedProxies 127.0.0.1 192.0.2.0/24
</LocationMatch>
WSGIScriptAlias /untrusted @APPS@/env.wsgi
<Location /untrusted>
    WSGITrustedProxyHeaders HTTP_X_FORWARDED_FOR HTTP_X_FORWARDED_PROTO
    WSGITrustedProxies 10.0.0.0/8
</Location>
WSGIScriptAlias /anypeer @APPS@/env.wsgi
<Location /anypeer>
    WSGITrustedProxyHeaders X-Real-IP X-Forwarded-SSL
</Location>
"""
FORWARDED = {"X-Forwarded-For": "203.0.113.5, 192.0.2.9, 127.0.0.1",
             "X-Forwarded-Host": "www.example.org", "X-Forwarded-Port": "8443",
             "X-Forwarded-Proto": "https", "X-Real-IP": "198.51.100.66"}


@pytest.fixture(scope="module", params=_mpms())
def proxy_server(request):
    ws = Workspace()
    srv = Apache(ws, "proxy", mpm=request.param, extra=PROXY_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()
    ws.cleanup()


@pytest.mark.parametrize("path", ["/px", "/pxd"])
def test_trusted_proxy_headers_from_a_trusted_proxy(proxy_server, path):
    env = proxy_server.get(path, headers=FORWARDED).json()
    # the client before the trusted proxies at the end of the list
    assert env["REMOTE_ADDR"] == "203.0.113.5"
    assert env["HTTP_HOST"] == "www.example.org"
    assert env["SERVER_PORT"] == "8443"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_X_FORWARDED_FOR"] == FORWARDED["X-Forwarded-For"]
    # a synonym that was not declared trusted never reaches the app
    assert "HTTP_X_REAL_IP" not in env


def test_trusted_proxy_headers_from_an_untrusted_peer(proxy_server):
    env = proxy_server.get("/untrusted", headers=FORWARDED).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in env and "HTTP_X_FORWARDED_PROTO" not in env
    assert "HTTP_X_REAL_IP" not in env
    # not declared at all: passed through as a plain header
    assert env["HTTP_X_FORWARDED_HOST"] == "www.example.org"


def test_trusted_proxy_headers_without_a_proxy_list_trust_any_peer(proxy_server):
    env = proxy_server.get("/anypeer", headers=dict(FORWARDED, **{"X-Forwarded-SSL": "on"})).json()
    assert env["REMOTE_ADDR"] == "198.51.100.66"
    assert env["wsgi.url_scheme"] == "https"
    assert "HTTP_X_FORWARDED_FOR" not in env  # a CLIENT synonym not declared
    assert "HTTP_X_FORWARDED_PROTO" not in env


def test_without_proxy_headers_nothing_changes(proxy_server):
    env = proxy_server.get("/px").json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"


def test_trusted_proxy_header_unknown_is_an_error(short_server):
    rc, out = config_test(short_server, "pxbad", "WSGITrustedProxyHeaders X-Bogus\n")
    assert rc != 0 and "'X-Bogus' is not a proxy header mod_wsgi knows" in out, out
    rc, out = config_test(short_server, "pxbad2", "WSGITrustedProxies not-an-ip\n")
    assert rc != 0 and "'not-an-ip' is not an IP address or network" in out, out


@pytest.mark.parametrize("path", ["/embedded", "/daemon"])
def test_mod_wsgi_environ_keys(modwsgi_server, path):
    envs = [modwsgi_server.get(path).json()["environ"] for _ in range(2)]
    for env in envs:
        assert env["mod_wsgi.request_handler"] == "wsgi-script"
        assert env["mod_wsgi.version"] == [6, 0, 0]
        assert re.match(r"^[A-Za-z0-9+/@_-]{6,}$", env["mod_wsgi.request_id"]), env
    assert envs[0]["mod_wsgi.request_id"] != envs[1]["mod_wsgi.request_id"]


@pytest.mark.parametrize("path", ["/embedded", "/daemon"])
def test_request_id_is_the_traceback_group_id(modwsgi_server, path):
    mark = modwsgi_server.log_mark()
    assert modwsgi_server.get(path + "?fail").status == 500
    text = modwsgi_server.wait_log_text(mark, r"ValueError: request id")
    m = re.search(r"\[([^\]]+)\] ValueError: request id <([^>]+)>", text)
    assert m and m.group(1) == m.group(2), text
    assert re.search(r"PYH0100: exception in WSGI app for GET %s \[%s\]: Traceback"
                     % (path, re.escape(m.group(1))), text), text


# -- item 4: scripts their user cannot read, in configtest and at start ---------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check as the Apache user")
def test_unreadable_script_is_a_warning_in_configtest_and_at_start(short_server, workspace):
    private = os.path.join(workspace.root, "private-app")
    os.makedirs(private)
    script = os.path.join(private, "app.wsgi")
    with open(os.path.join(workspace.apps, "dropin_info.wsgi")) as src, open(script, "w") as f:
        f.write(src.read())
    os.chmod(private, 0o700)
    conf = ("WSGIScriptAlias /private %s\n"
            "WSGIScriptAlias /fine @APPS@/dropin_info.wsgi\n" % script)
    rc, out = config_test(short_server, "unreadable-t", conf)
    assert rc == 0 and "Syntax OK" in out, out
    needle = ("PYH0115: WSGIScriptAlias /private: Apache's User 'www-data' cannot read the "
              "script '%s' ('%s' is mode 0700)" % (script, private))
    assert needle in out, out
    srv = started(short_server, "unreadable", conf)
    assert srv.error_log().count("PYH0115") == 1, srv.error_log()
    assert needle in srv.error_log()
    assert srv.get("/fine").status == 200
