"""ASGI extensions Apache makes natural (issue 13 point 5), each listed in
scope["extensions"] only where it works: http.response.pathsend and
http.response.zerocopysend as file buckets the request owns. Raw ASGI app:
tests/apps/asgi_files.py (it sends itself)."""

import json
import os
import socket
import ssl
import time

import pytest

import harness

# sendfile (not mmap): a file bucket Apache keeps reads its descriptor late
CONF = "EnableSendfile On\nEnableMMAP Off\nASGIScriptAlias /f @APPS@/asgi_files.py\n"


_MPMS = (harness.MPMS if not os.environ.get("PYHOST_TEST_MPMS")
         else [m for m in os.environ["PYHOST_TEST_MPMS"].split(",") if m in harness.MPMS])


# Embedded, and in a daemon process group (issue 14 point 4): there the
# daemon reads the files into relay frames and the Apache child sends
# the 103 an I frame asks for.
@pytest.fixture(scope="module", params=[(m, mode) for m in _MPMS
                                        for mode in ("embedded", "daemon")],
                ids=lambda p: "%s-%s" % p)
def srv(request, workspace):
    mpm, mode = request.param
    daemon = ("WSGIDaemonProcess extd threads=4\nWSGIProcessGroup extd\n"
              if mode == "daemon" else "")
    s = harness.Apache(workspace, "asgi-ext-%s-%s" % (mpm, mode), mpm=mpm,
                       extra=daemon + CONF)
    s.start()
    if mode == "daemon":  # its "ready" entry is logged before any test's mark
        assert s.get("/f/ext").status == 200
    yield s
    s.stop()


@pytest.fixture(scope="module")
def script(workspace):
    with open(os.path.join(workspace.apps, "asgi_files.py"), "rb") as f:
        return f.read()


def test_extensions_listed(srv):
    r = srv.get("/f/ext")
    assert r.status == 200
    assert json.loads(r.body) == ["http.response.early_hint", "http.response.pathsend",
                                  "http.response.zerocopysend"]
    # HTTP/1.0 has no interim responses: no early_hint.
    r = srv.raw(b"GET /f/ext HTTP/1.0\r\n\r\n")
    assert json.loads(r.body) == ["http.response.pathsend", "http.response.zerocopysend"]


def test_pathsend_sends_the_file_with_its_length(srv, script):
    mark = srv.log_mark()
    r = srv.get("/f/path")
    assert (r.status, r.body) == (200, script), r
    assert r.header("Content-Length") == str(len(script))
    h = srv.request("HEAD", "/f/path")
    assert (h.status, h.body, h.header("Content-Length")) == (200, b"", str(len(script)))
    assert not srv.log_entries_since(mark), srv.log_since(mark)


def test_zerocopysend_pieces_from_files_the_app_closed(srv, script):
    mark = srv.log_mark()
    r = srv.get("/f/zc")
    assert r.status == 200, r
    assert r.body == script[:50] + b"|mid|" + script[100:130] + script[200:], r.body[:300]
    assert not srv.log_entries_since(mark), srv.log_since(mark)


def test_zerocopysend_of_a_big_file_to_a_slow_client(srv):
    # The worker may still be sending after the app closed its file: the
    # bucket must own a descriptor of its own.
    mark = srv.log_mark()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    s.settimeout(20)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"GET /f/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(1.0)  # the app has sent and closed its file long since
    data = harness.read_until_close(s, timeout=20)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert len(body) == 8 * 1024 * 1024 and body == bytes(range(256)) * 32768, len(body)
    assert not srv.log_entries_since(mark), srv.log_since(mark)


def test_early_hint_is_a_103_before_the_response(srv):
    mark = srv.log_mark()
    data = srv.raw(b"GET /f/hint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").raw
    hint, _, rest = data.partition(b"\r\n\r\n")
    lines = hint.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 103"), data[:500]
    assert sorted(l for l in lines[1:] if l.lower().startswith(b"link:")) == [
        b"Link: </app.js>; rel=preload; as=script",
        b"Link: </style.css>; rel=preload; as=style"], data[:500]
    assert rest.startswith(b"HTTP/1.1 200"), data[:500]
    # The response keeps its own headers; a hint after the start is dropped.
    head = rest.partition(b"\r\n\r\n")[0]
    assert b"</style.css>" in head and b"</late>" not in data and b"</app.js>" not in head
    assert rest.endswith(b"hinted"), rest
    assert not srv.log_entries_since(mark), srv.log_since(mark)


@pytest.mark.parametrize("path, entry, needle", [
    ("/f/badhint", "PYH0204", "control character"),
    ("/f/missing", "PYH0203", "FileNotFoundError"),
    ("/f/relative", "PYH0204", "pathsend's path must be an absolute path"),
    ("/f/early", "PYH0204", "http.response.pathsend before http.response.start"),
])
def test_bad_pathsend_is_500_and_named(srv, path, entry, needle):
    mark = srv.log_mark()
    r = srv.get(path)
    assert r.status == 500, r
    entries = srv.wait_log_entries(mark, 1)
    assert len(entries) == 1 and entry in entries[0] and needle in entries[0], entries


# ---- tls ------------------------------------------------------------------------

TLS_CONF = """\
<IfModule !socache_shmcb_module>
    LoadModule socache_shmcb_module {moddir}/mod_socache_shmcb.so
</IfModule>
<IfModule !ssl_module>
    LoadModule ssl_module {moddir}/mod_ssl.so
</IfModule>
SSLSessionCache none
<VirtualHost 127.0.0.1:@PORT1@>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
</VirtualHost>
"""


def test_tls_extension_from_mod_ssl(short_server, workspace, mpm):
    cert, key = harness.tls_certificate(workspace)
    srv = short_server("asgi-tls", mpm=mpm, ports=2, extra=CONF + TLS_CONF.format(
        moddir=harness.apache_modules_dir(), cert=cert, key=key))
    srv.start()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", srv.ports[1]), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(b"GET /f/tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = harness.read_until_close(s, timeout=10)
            version = s.version()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:300]
    tls = json.loads(body)
    with open(cert) as f:
        pem = f.read()
    assert tls["server_cert"].strip() == pem.strip()
    assert tls["tls_version"] == {"TLSv1.2": 0x303, "TLSv1.3": 0x304}[version], (tls, version)
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None and tls["cipher_suite"] is None
    assert tls["cipher_name"], tls
    # Plain HTTP: no tls extension.
    r = srv.get("/f/tls")
    assert (r.status, r.body) == (200, b"null")


@pytest.mark.skipif(not __import__("shutil").which("nghttp"),
                    reason="needs nghttp (nghttp2-client; scripts/install-deps.sh --test)")
def test_early_hint_over_http2(short_server, workspace, mpm):
    if mpm == "prefork":
        pytest.skip("mod_http2 does not serve under prefork")
    cert, key = harness.tls_certificate(workspace)
    # mod_http2 sends interim responses only with H2EarlyHints on (and
    # would push the preloads unless H2Push off).
    srv = short_server("asgi-h2-hint", mpm=mpm, ports=2,
                       extra=harness.http2_conf(cert, key) + "H2EarlyHints on\nH2Push off\n" + CONF)
    srv.start()
    p = __import__("subprocess").run(
        ["nghttp", "-v", "http://127.0.0.1:%d/f/hint" % srv.port],
        capture_output=True, text=True, timeout=30)
    recv = [l.split(") ", 1)[1] for l in p.stdout.splitlines()
            if "recv (stream_id=" in l and (":status" in l or "link:" in l)]
    assert recv[:2] == [":status: 103", "link: </style.css>; rel=preload; as=style, "
                        "</app.js>; rel=preload; as=script"], p.stdout
    assert recv[2] == ":status: 200", p.stdout
    assert "hinted" in p.stdout, p.stdout
