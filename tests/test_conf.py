"""Every conf/ snippet passes Apache's config test inside a minimal main
config, and the ones that serve an app are started and requested, so the
examples cannot rot.

The snippets use the paths a reader has (/srv/..., /opt/venv, ports 80 and
443, the module where `pyhost install-module` puts it); they are rewritten to
this test's world-readable copies of tests/apps/conf_srv, this venv, the
module under test and ephemeral ports."""

import glob
import http.client
import os
import re
import socket
import ssl
import subprocess
import sys

import pytest

import harness

CONF_DIR = os.path.join(os.path.dirname(harness.HERE), "conf")
SNIPPETS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CONF_DIR, "*.conf")))
INSTALLED_MODULE = "/usr/lib/apache2/modules/mod_pyhost.so"
CERT = "/etc/ssl/certs/example.org.pem"
KEY = "/etc/ssl/private/example.org.key"
# Modules a snippet may need beyond the harness's standard set, loaded the
# way a distribution's a2enmod would.
MORE_MODULES = ("socache_shmcb", "ssl", "http2")


@pytest.fixture(scope="module")
def tls_files(workspace):
    directory = os.path.join(workspace.root, "conf-tls")
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


class SnippetApache(harness.Apache):
    """The harness's Apache, with a conf/ snippet as its configuration and
    only the document root granted, so a snippet that forgets to grant its
    app's directory fails here as it would for a reader."""

    def __init__(self, workspace, name, snippet, tls):
        with open(os.path.join(CONF_DIR, snippet)) as f:
            self.snippet = f.read()
        self.tls = tls
        super().__init__(workspace, name, extra=self.rewrite(workspace, self.snippet, tls),
                         ports=2, python_directives=False)

    @staticmethod
    def rewrite(ws, text, tls):
        srv = os.path.join(ws.apps, "conf_srv")
        text = re.sub(r"(?m)^\s*Listen\b.*$", "", text)  # the harness Listens on both ports
        text = text.replace("/srv/", srv + "/").replace("/opt/venv", sys.prefix)
        text = text.replace(INSTALLED_MODULE, harness.module_under_test()[1])
        text = text.replace("*:80>", "*:@PORT0@>").replace("*:443>", "*:@PORT1@>")
        if tls:
            text = text.replace(CERT, tls[0]).replace(KEY, tls[1])
        modules = "\n".join(
            "<IfModule !{0}_module>\n    LoadModule {0}_module {1}/mod_{0}.so\n</IfModule>"
            .format(m, harness.apache_modules_dir()) for m in MORE_MODULES)
        return modules + "\n" + text

    def wait_ready(self, timeout=30.0):
        # The harness waits for /ping.txt; a snippet that mounts an app at /
        # answers that URL itself (a 404 from Django is ready too).
        deadline = harness.time.time() + timeout
        while harness.time.time() < deadline:
            if self.proc.poll() is not None:
                raise harness.ServerFailedToStart("apache exited with %s\n%s\n%s" % (
                    self.proc.returncode, self._stdout_log(), self.error_log()[-5000:]))
            try:
                self.request("GET", "/ping.txt", timeout=2)
                return
            except (OSError, http.client.HTTPException):
                harness.time.sleep(0.1)
        raise harness.ServerFailedToStart("apache did not answer within %.0fs" % timeout)

    def render(self, ports):
        text = super().render(ports)
        text = text.replace('<Directory "%s">' % self.ws.root, '<Directory "%s">' % self.ws.docroot)
        if "LoadModule pyhost_module" in self.snippet:
            # The snippet's own LoadModule line loads it: drop the template's
            # (the first one; the snippet comes after it).
            name, path = harness.module_under_test()
            text = text.replace("LoadModule %s %s\n" % (name, path), "", 1)
        return text


@pytest.fixture
def snippet_server(workspace, tls_files):
    started = []

    def make(snippet):
        srv = SnippetApache(workspace, "conf-%s-%d" % (snippet[:-5], len(harness.ALL_SERVERS)),
                            snippet, tls_files)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


def test_every_snippet_is_tested():
    assert SNIPPETS, "no conf/*.conf found"
    tested = {"minimal.conf", "virtual-hosts.conf", "django.conf", "flask-static.conf",
              "tls-http2.conf", "from-mod_wsgi.conf", "fastapi-static.conf"}
    assert set(SNIPPETS) == tested, "add a serving test for the new snippet(s)"


@pytest.mark.parametrize("snippet", SNIPPETS)
def test_snippet_passes_apache_config_test(snippet_server, snippet):
    rc, out = snippet_server(snippet).config_test()
    assert rc == 0 and "Syntax OK" in out, out


def _started(snippet_server, snippet):
    srv = snippet_server(snippet)
    srv.start()
    return srv


@pytest.mark.parametrize("snippet", ["minimal.conf", "from-mod_wsgi.conf"])
def test_hello_snippets_serve(snippet_server, snippet):
    srv = _started(snippet_server, snippet)
    r = srv.get("/some/path")
    assert r.status == 200 and r.body == b"hello from conf/ scheme=http", r


def test_virtual_hosts_get_separate_interpreters(snippet_server):
    srv = _started(snippet_server, "virtual-hosts.conf")
    seen = {}
    for _ in range(4):
        for site in ("site-a", "site-b"):
            j = srv.get("/", headers={"Host": site + ".example"}).json()
            assert j["site"] == site
            assert j["main"] is False, j  # a sub-interpreter, not %{GLOBAL}
            seen.setdefault(j["pid"], {}).setdefault(site, set()).add(j["interp_id"])
    for pid, sites in seen.items():
        if len(sites) == 2:
            assert not (sites["site-a"] & sites["site-b"]), (pid, sites)


def test_django_snippet_serves(snippet_server):
    srv = _started(snippet_server, "django.conf")
    r = srv.get("/")
    assert r.status == 200 and r.body == b"hello from mysite", r


def test_django_snippet_static_files_by_apache(snippet_server):
    srv = _started(snippet_server, "django.conf")
    r = srv.get("/static/site.css")
    assert r.status == 200 and r.body == b"h1 { color: green; }\n", r


def test_flask_snippet_serves(snippet_server):
    srv = _started(snippet_server, "flask-static.conf")
    r = srv.get("/")
    assert r.status == 200 and r.body == b"hello from flask"


def test_flask_snippet_static_files_by_apache(snippet_server):
    srv = _started(snippet_server, "flask-static.conf")
    r = srv.get("/static/style.css")
    assert r.status == 200 and r.body == b"p { color: navy; }\n"
    assert r.header("X-Served-By") is None, "Flask served it, not Apache"


@pytest.mark.skipif(__import__("importlib").util.find_spec("fastapi") is None,
                    reason="fastapi is not installed")
def test_fastapi_snippet_app_and_static_files(snippet_server):
    srv = _started(snippet_server, "fastapi-static.conf")
    r = srv.get("/items/2")
    assert r.status == 200 and r.json() == {"id": 2, "name": "two"}, r
    assert srv.get("/items/x").status == 422
    r = srv.get("/static/app.css")
    assert r.status == 200 and r.body == b"body { color: teal; }\n", r


def test_tls_http2_snippet_serves_h2(snippet_server, tls_files):
    srv = _started(snippet_server, "tls-http2.conf")
    ctx = ssl.create_default_context(cafile=tls_files[0])
    conn = http.client.HTTPSConnection("127.0.0.1", srv.ports[1], context=ctx, timeout=15)
    try:
        r = harness.do_request(conn, "GET", "/")
    finally:
        conn.close()
    assert r.status == 200 and r.body == b"hello from conf/ scheme=https"
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", srv.ports[1]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"
