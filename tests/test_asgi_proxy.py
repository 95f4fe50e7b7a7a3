"""WSGITrustedProxyHeaders / WSGITrustedProxies (and so `pyhost serve
--trust-proxy`) for ASGI mounts: from a trusted proxy the forwarded
client, scheme, host and port are the scope's client, scheme and server
(and Host), as they are the WSGI environ's; from anyone else the named
headers never reach scope["headers"]. The WSGI side is tested in
test_dropin.py (PROXY_CONF), with the same headers. App:
tests/apps/asgi_proxy.py."""

import json
import os

import pytest

import harness
from test_asgi_websocket import Client
from test_cli_serve import _json, serve  # noqa: F401 (serve: a fixture)
from test_dropin import FORWARDED, _mpms

PROXY_CONF = """
WSGIDaemonProcess pxgrp processes=1 threads=2
ASGIScriptAlias /px @APPS@/asgi_proxy.py
ASGIScriptAlias /pxd @APPS@/asgi_proxy.py process-group=pxgrp
<LocationMatch ^/pxd?/>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Port X-Forwarded-Proto
    WSGITrustedProxies 127.0.0.1 192.0.2.0/24
</LocationMatch>
ASGIScriptAlias /untrusted @APPS@/asgi_proxy.py
<Location /untrusted>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Port X-Forwarded-Proto
    WSGITrustedProxies 10.0.0.0/8
</Location>
ASGIScriptAlias /anypeer @APPS@/asgi_proxy.py
<Location /anypeer>
    WSGITrustedProxyHeaders X-Real-IP X-Forwarded-SSL X-Forwarded-Server
</Location>
ASGIScriptAlias /plain @APPS@/asgi_proxy.py
"""
PROXY_HEADERS = {"x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto"}


@pytest.fixture(scope="module", params=_mpms())
def asgi_proxy_server(request, workspace):
    srv = harness.Apache(workspace, "asgi-proxy-" + request.param, mpm=request.param,
                         extra=PROXY_CONF)
    srv.start(timeout=30)
    yield srv
    srv.stop()


def _scope(srv, path, headers):
    r = srv.get(path, headers=headers)
    assert r.status == 200, (r.status, r.body)
    s = r.json()
    s["names"] = [k for k, _ in s["headers"]]
    s["hdict"] = dict(s["headers"])
    return s


def _ws_scope(srv, path, headers):
    raw = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
    c = Client(srv, path, raw)
    try:
        assert c.status == 101, (c.status, c.buf)
        op, payload = c.recv_message()
        assert op == 1, (op, payload)
    finally:
        c.close()
    s = json.loads(payload)
    s["names"] = [k for k, _ in s["headers"]]
    s["hdict"] = dict(s["headers"])
    return s


@pytest.mark.parametrize("mount", ["/px", "/pxd"], ids=["embedded", "daemon"])
def test_asgi_http_scope_from_a_trusted_proxy(asgi_proxy_server, mount):
    s = _scope(asgi_proxy_server, mount + "/x", FORWARDED)
    # as REMOTE_ADDR: the entry before the trusted proxies at the end;
    # the port stays the connection's, as REMOTE_PORT does
    assert s["client"][0] == "203.0.113.5", s
    assert s["scheme"] == "https", s
    assert s["server"] == ["www.example.org", 8443], s
    assert s["hdict"]["host"] == "www.example.org", s
    assert s["hdict"]["x-forwarded-for"] == FORWARDED["X-Forwarded-For"], s
    # a synonym that was not declared trusted never reaches the app
    assert "x-real-ip" not in s["names"], s
    # the same request where the directives are not set: untouched
    s = _scope(asgi_proxy_server, "/plain/x", FORWARDED)
    assert s["client"][0] == "127.0.0.1" and s["scheme"] == "http", s
    assert s["server"] == ["127.0.0.1", asgi_proxy_server.port], s
    assert PROXY_HEADERS | {"x-real-ip"} <= set(s["names"]), s


def test_asgi_websocket_scope_from_a_trusted_proxy(asgi_proxy_server):
    s = _ws_scope(asgi_proxy_server, "/px/ws", FORWARDED)
    assert s["type"] == "websocket", s
    assert s["client"][0] == "203.0.113.5", s
    assert s["scheme"] == "wss", s
    assert s["server"] == ["www.example.org", 8443], s
    assert s["hdict"]["host"] == "www.example.org", s
    assert "x-real-ip" not in s["names"], s


# (A daemon mount's relayed headers were already dropped in the Apache
# child before ASGI scopes took the directives: no test of its own here.)
@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_asgi_scope_from_an_untrusted_peer(asgi_proxy_server, websocket):
    s = (_ws_scope if websocket else _scope)(asgi_proxy_server, "/untrusted/x", FORWARDED)
    assert s["client"][0] == "127.0.0.1", s
    assert s["scheme"] == ("ws" if websocket else "http"), s
    assert s["server"] == ["127.0.0.1", asgi_proxy_server.port], s
    assert s["hdict"]["host"] != "www.example.org", s
    # the forged headers are kept from the app, as from a WSGI one
    assert not PROXY_HEADERS & set(s["names"]), s
    assert "x-real-ip" not in s["names"], s  # an undeclared synonym


def test_asgi_scope_without_a_proxy_list_trusts_any_peer(asgi_proxy_server):
    s = _scope(asgi_proxy_server, "/anypeer/x",
               dict(FORWARDED, **{"X-Forwarded-SSL": "on", "X-Forwarded-Server": "front.example"}))
    assert s["client"][0] == "198.51.100.66", s
    assert s["scheme"] == "https", s
    assert s["server"][0] == "front.example", s
    assert "x-forwarded-for" not in s["names"], s  # a CLIENT synonym not declared
    assert "x-forwarded-proto" not in s["names"], s


@pytest.mark.parametrize("mount", ["/px", "/pxd"], ids=["embedded", "daemon"])
def test_asgi_forwarded_host_with_a_port(asgi_proxy_server, mount):
    s = _scope(asgi_proxy_server, mount + "/x", {"X-Forwarded-Host": "[2001:db8::1]:9000"})
    assert s["server"] == ["2001:db8::1", 9000], s
    assert s["client"][0] == "127.0.0.1" and s["scheme"] == "http", s
    s = _scope(asgi_proxy_server, mount + "/x", {"X-Forwarded-Host": "h.example:8080",
                                            "X-Forwarded-Port": "not-a-port"})
    assert s["server"] == ["h.example", 8080], s


def test_serve_trust_proxy_asgi(serve, workspace):
    fwd = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
           "X-Forwarded-Host": "app.example", "X-Forwarded-Port": "443"}
    app = os.path.join(workspace.apps, "asgi_proxy.py")
    s = serve(app, "--port", harness.free_port(), "--trust-proxy", "127.0.0.0/8")
    s.wait_url()
    got = _json(s, "/", headers=fwd)
    assert got["type"] == "http", got
    assert (got["client"][0], got["scheme"], got["server"]) == (
        "203.0.113.9", "https", ["app.example", 443]), got
    got = _json(s, "/")
    assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http", got
    s.stop()
    s = serve(app, "--port", harness.free_port(), "--trust-proxy", "192.0.2.1")
    s.wait_url()
    got = _json(s, "/", headers=fwd)
    assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http", got
    assert got["server"] == ["127.0.0.1", s.port], got
    assert not PROXY_HEADERS & {k for k, _ in got["headers"]}, got
