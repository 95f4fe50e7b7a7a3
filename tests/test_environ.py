"""The WSGI environ: CGI variables, SCRIPT_NAME/PATH_INFO split, HTTP_*
headers and the wsgi.* keys, as mod_wsgi sets them."""

import json


def env(server, path, headers=None, **kw):
    r = server.get(path, headers=headers, **kw)
    assert r.status == 200, r
    return r.json()


def test_cgi_variables(server):
    e = env(server, "/env/a/b?x=1&y=%20z")
    assert e["REQUEST_METHOD"] == "GET"
    assert e["SCRIPT_NAME"] == "/env"
    assert e["PATH_INFO"] == "/a/b"
    assert e["QUERY_STRING"] == "x=1&y=%20z"
    assert e["REQUEST_URI"] == "/env/a/b?x=1&y=%20z"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["SERVER_NAME"] in ("127.0.0.1", "localhost")
    assert e["SERVER_PORT"] == str(server.port)
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["SCRIPT_FILENAME"] == server.ws.apps + "/env.wsgi"
    assert e["HTTP_HOST"] == "127.0.0.1:%d" % server.port
    # CGI variables are str, every one of them (PEP 3333 "native strings").
    for k, t in e["_types"].items():
        if "." not in k:
            assert t == "str", (k, t)


def test_wsgi_keys(server):
    e = env(server, "/env")
    assert e["wsgi.version"] == [1, 0]
    assert e["_types"]["wsgi.version"] == "tuple"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.run_once"] is False
    assert e["wsgi.multiprocess"] is True
    assert e["wsgi.multithread"] is (server.mpm != "prefork")
    assert e["wsgi.input_terminated"] is True
    assert e["_file_wrapper_callable"] is True
    assert e["_input_methods"] == ["__iter__", "read", "readline", "readlines"]
    assert e["_errors_methods"] == ["flush", "write", "writelines"]


def test_mount_point_exact(server):
    e = env(server, "/env")
    assert e["SCRIPT_NAME"] == "/env"
    assert e["PATH_INFO"] == ""


def test_mount_point_trailing_slash(server):
    e = env(server, "/env/")
    assert e["SCRIPT_NAME"] == "/env"
    assert e["PATH_INFO"] == "/"


def test_mount_prefix_is_segment_boundary(server):
    # /envx is not under the /env mount.
    r = server.get("/envx")
    assert r.status == 404


def test_mount_at_root_has_empty_script_name(server):
    port = server.ports[1]
    e = env(server, "/some/path?q=1", port=port)
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/some/path"
    assert e["QUERY_STRING"] == "q=1"
    e = env(server, "/", port=port)
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/"


def test_path_info_is_decoded_and_latin1_tunnelled(server):
    e = env(server, "/env/caf%C3%A9/a%20b")
    assert e["_types"]["PATH_INFO"] == "str"
    # UTF-8 bytes of the URL, each byte one code point (latin-1 tunnelling).
    assert e["PATH_INFO"] == "/caf\u00c3\u00a9/a b"
    assert e["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a b"
    # REQUEST_URI stays raw.
    assert e["REQUEST_URI"] == "/env/caf%C3%A9/a%20b"


def test_request_headers_become_http_vars(server):
    e = env(server, "/env", headers={"X-Custom-Thing": "v1", "Accept": "text/x-test",
                                     "User-Agent": "pyhost-tests"})
    assert e["HTTP_X_CUSTOM_THING"] == "v1"
    assert e["HTTP_ACCEPT"] == "text/x-test"
    assert e["HTTP_USER_AGENT"] == "pyhost-tests"


def test_repeated_header_is_joined(server):
    r = server.raw(b"GET /env HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Multi: a\r\n"
                   b"X-Multi: b\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    e = json.loads(r.body)
    assert e["HTTP_X_MULTI"] in ("a, b", "a,b")


def test_underscore_headers_and_proxy_never_reach_environ(server):
    r = server.raw(b"GET /env HTTP/1.1\r\nHost: 127.0.0.1\r\nX_Under_Score: evil\r\n"
                   b"X-Dash-Ok: fine\r\nProxy: http://evil.example:1\r\n"
                   b"Connection: close\r\n\r\n")
    assert r.status == 200, r
    e = json.loads(r.body)
    assert e["HTTP_X_DASH_OK"] == "fine"
    assert "HTTP_X_UNDER_SCORE" not in e
    assert not [k for k in e if "UNDER" in k]
    assert "HTTP_PROXY" not in e


def test_content_type_and_length(server):
    r = server.post("/env", b"abc", headers={"Content-Type": "text/x-mine"})
    assert r.status == 200
    e = r.json()
    assert e["REQUEST_METHOD"] == "POST"
    assert e["CONTENT_TYPE"] == "text/x-mine"
    assert e["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in e
    assert "HTTP_CONTENT_LENGTH" not in e


def test_no_content_length_without_body(server):
    e = env(server, "/env")
    assert e.get("CONTENT_LENGTH", "") in ("", "0")


def test_environ_is_fresh_per_request(server):
    a = env(server, "/env/first", headers={"X-Only-First": "1"})
    b = env(server, "/env/second")
    assert a["HTTP_X_ONLY_FIRST"] == "1"
    assert "HTTP_X_ONLY_FIRST" not in b
    assert b["PATH_INFO"] == "/second"


def test_http10_request(server):
    r = server.raw(b"GET /env/x HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert r.status == 200, r
    e = json.loads(r.body)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert e["PATH_INFO"] == "/x"


def test_wsgi_errors_go_to_the_error_log(server, token):
    mark = server.log_mark()
    r = server.get("/errors?" + token)
    assert r.status == 200
    text = server.wait_log_text(mark, "pyhost-test-errors-writelines %s" % token)
    lines = [l for l in text.splitlines() if token in l]
    assert any("pyhost-test-errors-write %s" % token in l for l in lines), text
    assert any("pyhost-test-errors-writelines %s" % token in l for l in lines), text
    # Tagged with the request: Apache's [client ...] field.
    assert all("client 127.0.0.1" in l for l in lines), lines
    # Output the app wrote on purpose is not an error entry.
    assert not server.log_entries_since(mark) or all(
        token in l for l in server.log_entries_since(mark))


def test_stdout_stderr_and_logging_reach_the_error_log(server, token):
    mark = server.log_mark()
    r = server.get("/printer?" + token)
    assert r.status == 200 and r.body == b"printed"
    text = server.wait_log_text(mark, "pyhost-test-logging %s" % token)
    for what in ("stdout", "stderr", "logging"):
        assert "pyhost-test-%s %s" % (what, token) in text, (what, text)


import pytest  # noqa: E402


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH", "PURGE"])
def test_other_methods_reach_the_app(server, method):
    r = server.request(method, "/env/m", body=b"x" if method in ("PUT", "PATCH") else None)
    assert r.status == 200, r
    assert r.json()["REQUEST_METHOD"] == method


# Odd request targets, with what mod_wsgi 4.9 gives for each (checked by
# pointing this suite at it): pyhost must split them the same way.
@pytest.mark.parametrize("target,query,path_info", [
    (b"/env?q=caf\xe9", "q=caf\u00e9", ""),
    (b"/%65nv/a%3Fb", "", "/a?b"),
    (b"//env//a", "", "/a"),
    (b"/env/a/../b", "", "/b"),
    (b"http://127.0.0.1/env/abs", "", "/abs"),
])
def test_odd_request_targets(server, target, query, path_info):
    r = server.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    e = json.loads(r.body)
    assert e["SCRIPT_NAME"] == "/env"
    assert e["PATH_INFO"] == path_info
    assert e["QUERY_STRING"] == query
    assert e["REQUEST_URI"] == target.decode("latin-1")


# Apache's variables (SetEnv, mod_rewrite, mod_ssl...) reach environ, but
# never over a CGI variable pyhost sets or a wsgi.* key; a request header
# wins over a SetEnv of the same HTTP_ name. A CGI variable this request
# does not have (REMOTE_USER without auth) is left to SetEnv, as today.
SETENV_CONF = """
WSGIScriptAlias /plain @APPS@/env.wsgi
WSGIScriptAlias /setenv @APPS@/env.wsgi application-group=%{GLOBAL}
<Location /setenv>
    SetEnv PYHOST_FROM_SETENV yes
    SetEnv SERVER_NAME forged.example
    SetEnv QUERY_STRING forged=1
    SetEnv PATH_INFO /forged
    SetEnv REQUEST_METHOD FORGED
    SetEnv SCRIPT_FILENAME /forged.wsgi
    SetEnv REMOTE_USER from-setenv
    SetEnv HTTP_X_BOTH from-setenv
    SetEnv wsgi.url_scheme forged
    SetEnv mod_wsgi.application_group forged
</Location>
"""


def test_setenv_never_overrides_cgi_or_wsgi_keys(short_server):
    srv = short_server("setenv", extra=SETENV_CONF)
    srv.start()
    # Alternate the two locations of one script so that nothing one
    # request's environ held can show up in the next one's.
    for _ in range(3):
        e = env(srv, "/setenv/p?q=1", headers={"X-Both": "from-header"})
        assert e["PYHOST_FROM_SETENV"] == "yes"
        assert e["SERVER_NAME"] in ("127.0.0.1", "localhost")
        assert e["QUERY_STRING"] == "q=1"
        assert e["PATH_INFO"] == "/p"
        assert e["SCRIPT_NAME"] == "/setenv"
        assert e["REQUEST_METHOD"] == "GET"
        assert e["SCRIPT_FILENAME"] == srv.ws.apps + "/env.wsgi"
        assert e["REMOTE_USER"] == "from-setenv"
        assert e["HTTP_X_BOTH"] == "from-header"
        assert e["wsgi.url_scheme"] == "http"
        assert e["mod_wsgi.application_group"] == ""
        assert e["mod_wsgi.process_group"] == ""
        assert e["mod_wsgi.callable_object"] == "application"
        assert e["mod_wsgi.script_reloading"] == "1"
        e = env(srv, "/plain/other")
        assert "PYHOST_FROM_SETENV" not in e
        assert "REMOTE_USER" not in e and "HTTP_X_BOTH" not in e
        assert e["SCRIPT_NAME"] == "/plain"
        assert e["PATH_INFO"] == "/other"
        assert e["QUERY_STRING"] == ""
        assert e["mod_wsgi.application_group"] == ""


# More mount points of one script than pyhost keeps environ templates for
# (16 per interpreter), each visited twice in turn so that templates are
# made, reused and dropped: every request must still see its own values.
def test_many_mount_points_of_one_script(short_server):
    srv = short_server("mounts", extra=(
        "WSGIScriptAliasMatch ^/m([0-9]+) @APPS@/env.wsgi\n"
        "<LocationMatch ^/m1[0-9]>\n    SetEnv PYHOST_TEENS yes\n"
        "    SetEnv SCRIPT_NAME forged\n</LocationMatch>\n"))
    srv.start()
    for round_ in range(2):
        for i in list(range(25)) + [3, 3, 24, 0]:
            e = env(srv, "/m%d/r%d?i=%d" % (i, round_, i),
                    headers={"X-Round": str(round_)})
            assert e["SCRIPT_NAME"] == "/m%d" % i, (i, e)
            assert e["PATH_INFO"] == "/r%d" % round_
            assert e["QUERY_STRING"] == "i=%d" % i
            assert e["REQUEST_URI"] == "/m%d/r%d?i=%d" % (i, round_, i)
            assert e["HTTP_X_ROUND"] == str(round_)
            assert e.get("PYHOST_TEENS") == ("yes" if 10 <= i <= 19 else None)
            assert e["wsgi.input"] == "<Input>", e["wsgi.input"]
            assert e["SCRIPT_FILENAME"] == srv.ws.apps + "/env.wsgi"


# Templates are shared by an interpreter's threads: concurrent requests to
# more mount points than are kept (so templates are made, reused and
# dropped while others read them) each see their own values. On a
# free-threaded build this runs with the GIL off.
def test_concurrent_requests_across_mount_points(short_server):
    import sysconfig
    import threading
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    srv = short_server("mounts-mt", extra=(
        ("WSGIFreeThreading On\n" if ft else "")
        + "StartServers 1\nServerLimit 1\nThreadLimit 8\nThreadsPerChild 8\n"
          "MinSpareThreads 1\nMaxSpareThreads 8\nMaxRequestWorkers 8\n"
          "WSGIScriptAliasMatch ^/m([0-9]+) @APPS@/env.wsgi\n"))
    srv.start()
    failures = []

    def client(n):
        # A new connection per request: the event MPM may close idle
        # keep-alive connections while every worker is busy.
        try:
            for j in range(40):
                i = (n * 7 + j * 3) % 21
                path = "/m%d/c%d/%d?j=%d" % (i, n, j, j)
                r = srv.get(path, headers={"X-Client": str(n)})
                e = r.json()
                want = {"SCRIPT_NAME": "/m%d" % i,
                        "PATH_INFO": "/c%d/%d" % (n, j),
                        "QUERY_STRING": "j=%d" % j, "REQUEST_URI": path,
                        "HTTP_X_CLIENT": str(n)}
                got = {k: e.get(k) for k in want}
                if r.status != 200 or got != want:
                    failures.append((r.status, want, got))
                    return
        except Exception as exc:  # reported below, not lost in a thread
            failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:3]


# Header values repeated from one request to the next share one str;
# whatever changes must still show, byte for byte (latin-1 included).
def test_header_values_follow_each_request(server):
    values = [b"one", b"two", b"one", b"o" * 200, b"o" * 200, b"o" * 199 + b"p",
              b"caf\xe9", b"caf\xe9", b"cafe", b"one"]
    for v in values:
        r = server.raw(b"GET /env HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Val: " + v
                       + b"\r\nCookie: c=" + v + b"\r\nConnection: close\r\n\r\n")
        assert r.status == 200, r
        e = json.loads(r.body)
        assert e["HTTP_X_VAL"] == v.decode("latin-1"), (v, e["HTTP_X_VAL"])
        assert e["HTTP_COOKIE"] == "c=" + v.decode("latin-1")
