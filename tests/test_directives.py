"""mod_wsgi directives in the scenario server: callable object, application
groups, WSGIScriptAliasMatch, pass-authorization, WSGIImportScript,
WSGIPythonPath, script reloading, HEAD mapping, error override, handlers."""

import os
import re
import time

import pytest

from harness import do_request


# -- WSGICallableObject / callable-object= ----------------------------------

@pytest.mark.parametrize("path,expected", [
    ("/callable/default", b"callable=application"),
    ("/callable/inline", b"callable=other"),
    ("/callable/dir", b"callable=other"),
])
def test_callable_object(server, path, expected):
    r = server.get(path)
    assert r.status == 200, r
    assert r.body == expected


# -- WSGIApplicationGroup / application-group= ------------------------------

def group_infos(server, paths):
    """Ask each path on ONE keep-alive connection, so that every answer comes
    from the same child process. Apache may close a keep-alive connection
    (a child retired as spare, say) and http.client then reconnects quietly,
    possibly to another child: try again in that case."""
    for _attempt in range(5):
        conn = server.connection()
        try:
            out = {}
            for p in paths:
                r = do_request(conn, "GET", p)
                assert r.status == 200, (p, r)
                out[p] = r.json()
        finally:
            conn.close()
        if len({v["pid"] for v in out.values()}) == 1:
            return out
        time.sleep(0.5)
    raise AssertionError("keep-alive requests kept landing in several processes: %s" % out)


def test_global_group_is_the_main_interpreter(server):
    info = group_infos(server, ["/grp/global", "/grp/global2"])
    g, g2 = info["/grp/global"], info["/grp/global2"]
    assert g["token"] == g2["token"], "two %{GLOBAL} scripts in different interpreters"
    assert g["main"] is True, g


def test_named_groups_are_sub_interpreters(server):
    info = group_infos(server, ["/grp/global", "/grp/alpha1", "/grp/alpha2", "/grp/beta"])
    g, a1, a2, b = (info[p] for p in ("/grp/global", "/grp/alpha1", "/grp/alpha2", "/grp/beta"))
    assert a1["token"] == a2["token"], "same group, different interpreters"
    assert a1["token"] != g["token"], "named group ran in the main interpreter"
    assert b["token"] not in (a1["token"], g["token"])
    assert a1["main"] is False and b["main"] is False
    # One interpreter per group per process: asking again gives the same one.
    again = group_infos(server, ["/grp/alpha1", "/grp/beta"])
    if again["/grp/alpha1"]["pid"] == a1["pid"]:
        assert again["/grp/alpha1"]["token"] == a1["token"]
        assert again["/grp/beta"]["token"] == b["token"]


def test_group_from_directive_and_env(server):
    info = group_infos(server, ["/grp/alpha1", "/grp/beta", "/grp/envvar", "/grp/dirbeta"])
    assert info["/grp/envvar"]["token"] == info["/grp/alpha1"]["token"], \
        "%{ENV:PYHOST_TEST_GROUP}=alpha did not select group alpha"
    assert info["/grp/dirbeta"]["token"] == info["/grp/beta"]["token"], \
        "WSGIApplicationGroup beta in <Location> did not select group beta"


def test_server_and_resource_groups(server):
    info = group_infos(server, ["/grp/global", "/grp/server", "/grp/resource", "/grp/alpha1"])
    tokens = {p: v["token"] for p, v in info.items()}
    assert len(set(tokens.values())) == 4, tokens
    assert info["/grp/server"]["main"] is False
    assert info["/grp/resource"]["main"] is False


# -- WSGIScriptAliasMatch -----------------------------------------------------

@pytest.mark.parametrize("name", ["one", "two"])
def test_script_alias_match_backreference(server, name):
    r = server.get("/match/%s/extra/path" % name)
    assert r.status == 200, r
    j = r.json()
    assert j["script"] == name
    assert j["SCRIPT_NAME"] == "/match/" + name
    assert j["PATH_INFO"] == "/extra/path"


def test_script_alias_match_missing_script(server):
    mark = server.log_mark()
    r = server.get("/match/three")
    assert r.status == 404
    assert server.get("/match/one").status == 200
    assert "exit signal" not in server.log_since(mark)


# -- WSGIPassAuthorization ----------------------------------------------------

AUTH = {"Authorization": "Basic dXNlcjpwYXNz"}


def test_authorization_hidden_by_default(server):
    e = server.get("/auth/off", headers=AUTH).json()
    assert "HTTP_AUTHORIZATION" not in e


@pytest.mark.parametrize("path", ["/auth/inline", "/auth/dir"])
def test_authorization_passed_when_on(server, path):
    e = server.get(path, headers=AUTH).json()
    assert e.get("HTTP_AUTHORIZATION") == AUTH["Authorization"]


# -- WSGIImportScript / WSGIPythonPath ---------------------------------------

def test_import_script_preloaded(server):
    r = server.get("/preload")
    assert r.status == 200
    j = r.json()
    assert j["preloaded"] is not None, "WSGIImportScript did not run in %{GLOBAL}"
    assert j["preloaded"]["pid"] == j["pid"]
    assert os.path.exists(server.ws.state_path("preload-%d" % j["pid"]))


def test_python_path_and_pth_files(server):
    r = server.get("/pypath")
    assert r.status == 200
    assert r.json() == {"pyhost_test_mod1": "mod1", "pyhost_test_mod2": "mod2",
                        "pyhost_test_mod3": "mod3"}


# -- WSGIScriptReloading ------------------------------------------------------

def rewrite_version(server, name, version):
    path = server.ws.state_path(name)
    with open(path) as f:
        text = f.read()
    text = re.sub(r'VERSION = "[^"]*"', 'VERSION = "%s"' % version, text)
    with open(path, "w") as f:
        f.write(text)
    # A distinct mtime even on coarse-grained file systems.
    st = os.stat(path)
    os.utime(path, (st.st_atime, st.st_mtime + 10))


def test_script_reloading_on(server, token):
    conn = server.connection()
    try:
        rewrite_version(server, "reload_on.wsgi", "a" + token)
        r = do_request(conn, "GET", "/reload/on")
        assert r.status == 200
        assert r.text.startswith("a" + token), r.text
        rewrite_version(server, "reload_on.wsgi", "b" + token)
        r2 = do_request(conn, "GET", "/reload/on")
        assert r2.status == 200
        assert r2.text.startswith("b" + token), r2.text
    finally:
        conn.close()


def test_script_reloading_off(server, token):
    conn = server.connection()
    try:
        r = do_request(conn, "GET", "/reload/off")
        assert r.status == 200
        first = r.text
        rewrite_version(server, "reload_off.wsgi", "c" + token)
        r2 = do_request(conn, "GET", "/reload/off")
        assert r2.status == 200
        if r2.text.split()[1] == first.split()[1]:  # same process: must not reload
            assert r2.text == first, "script reloaded with WSGIScriptReloading Off"
    finally:
        conn.close()


# -- WSGIMapHEADToGET ---------------------------------------------------------

def head(server, path):
    r = server.raw(b"HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    assert r.status == 200, r
    assert r.raw.partition(b"\r\n\r\n")[2] == b"", "HEAD response has a body"
    return r.header("X-Method-Seen")


def test_map_head_to_get_on(server):
    assert head(server, "/head/on") == "GET"


def test_map_head_to_get_off(server):
    assert head(server, "/head/off") == "HEAD"


def test_map_head_to_get_auto_without_filters(server):
    assert head(server, "/head/auto") == "HEAD"


def test_map_head_to_get_auto_with_output_filter(server):
    r = server.raw(b"HEAD /head/autofilter HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.header("X-Output-Filter") == "yes"
    assert r.header("X-Method-Seen") == "GET"


# -- WSGIErrorOverride --------------------------------------------------------

def test_error_override_on_uses_error_document(server):
    r = server.get("/eo/on?404")
    assert r.status == 404
    assert b"pyhost-custom-404" in r.body
    assert b"app-body" not in r.body


def test_error_override_on_leaves_success_alone(server):
    r = server.get("/eo/on?200")
    assert r.status == 200
    assert r.body == b"app-body-200"


def test_error_override_off_keeps_app_body(server):
    r = server.get("/eo/off?404")
    assert r.status == 404
    assert r.body == b"app-body-404"


# -- SetHandler / AddHandler wsgi-script -------------------------------------

def test_sethandler_wsgi_script(server):
    r = server.get("/handler/hello.wsgi/more")
    assert r.status == 200, r
    j = r.json()
    assert j["dir"] == "handler"
    assert j["SCRIPT_NAME"] == "/handler/hello.wsgi"
    assert j["PATH_INFO"] == "/more"


def test_handler_needs_execcgi(server):
    r = server.get("/noexec/hello.wsgi")
    assert r.status == 403
    assert b"application" not in r.body  # source not served


def test_addhandler_wsgi_script(server):
    r = server.get("/addhandler/hello.wsgi")
    assert r.status == 200
    assert r.json()["dir"] == "addhandler"
    r = server.get("/addhandler/plain.txt")
    assert r.status == 200
    assert r.body == b"plain static text\n"


def test_reloading_recovers_from_a_broken_edit(server, token):
    path = server.ws.state_path("reload_broken.wsgi")
    with open(path) as f:
        good = f.read()
    try:
        rewrite_version(server, "reload_broken.wsgi", "good1" + token)
        assert server.get("/reload/broken").text.startswith("good1" + token)
        with open(path, "w") as f:
            f.write(good.replace("def application", "def application(:  # syntax error\n"
                                 "def unused"))
        st = os.stat(path)
        os.utime(path, (st.st_atime, st.st_mtime + 20))
        mark = server.log_mark()
        r = server.get("/reload/broken")
        assert r.status == 500
        entries = server.wait_log_entries(mark, count=1, timeout=2)
        assert len(entries) == 1, entries
        assert "SyntaxError" in server.log_since(mark)
        with open(path, "w") as f:
            f.write(good)
        rewrite_version(server, "reload_broken.wsgi", "good2" + token)
        st = os.stat(path)
        os.utime(path, (st.st_atime, st.st_mtime + 30))
        r = server.get("/reload/broken")
        assert r.status == 200 and r.text.startswith("good2" + token), r
    finally:
        with open(path, "w") as f:
            f.write(good)
