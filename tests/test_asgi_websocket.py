"""ASGI WebSockets (issue 13 point 7): the handshake, messages both ways,
the close handshake, RFC 6455's protocol errors and permessage-deflate,
the denial response (websocket.http.response), against a real Apache on
each MPM, with a raw-socket client that can also send what no
well-behaved client would. Apps: tests/apps/asgi_ws.py, asgi_ws_deny.py."""

import base64
import hashlib
import json
import os
import asyncio
import shutil
import ssl
import struct
import time
import zlib

import pytest

import harness

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Port 1: compression off and a 1 s keepalive; port 2: TLS (wss://).
WS_CONF = r"""
ASGIScriptAlias /ws @APPS@/asgi_ws.py
ASGIScriptAlias /deny @APPS@/asgi_ws_deny.py
ASGIWebSocketMaxMessage 65536
<VirtualHost 127.0.0.1:@PORT1@>
    ASGIWebSocketCompression Off
    ASGIWebSocketPingInterval 1
    ASGIWebSocketPingTimeout 1
</VirtualHost>
"""

TLS_CONF = r"""
<IfModule !socache_shmcb_module>
    LoadModule socache_shmcb_module @MODDIR@/mod_socache_shmcb.so
</IfModule>
<IfModule !ssl_module>
    LoadModule ssl_module @MODDIR@/mod_ssl.so
</IfModule>
<IfModule !http2_module>
    LoadModule http2_module @MODDIR@/mod_http2.so
</IfModule>
SSLSessionCache none
H2WebSockets on
<VirtualHost 127.0.0.1:@PORT2@>
    Protocols h2 http/1.1
    SSLEngine on
    SSLCertificateFile @CERT@
    SSLCertificateKeyFile @KEY@
</VirtualHost>
"""

MPM_PARAMS = (harness.MPMS if not os.environ.get("PYHOST_TEST_MPMS")
              else [m for m in os.environ["PYHOST_TEST_MPMS"].split(",") if m in harness.MPMS])


def ws_server(workspace, name, mpm):
    conf = WS_CONF
    if shutil.which("openssl"):
        cert, key = harness.tls_certificate(workspace)
        conf += (TLS_CONF.replace("@MODDIR@", harness.apache_modules_dir())
                 .replace("@CERT@", cert).replace("@KEY@", key))
    return harness.Apache(workspace, name, mpm=mpm, extra=conf, ports=3)


@pytest.fixture(scope="module", params=MPM_PARAMS)
def wsrv(request, workspace):
    srv = ws_server(workspace, "asgi-ws-" + request.param, request.param)
    srv.start()
    yield srv
    srv.stop()


# ---- a raw client ------------------------------------------------------------

class Client:
    def __init__(self, srv, path, headers=b"", port=None, key=None, timeout=10.0,
                 tls=False):
        self.sock = srv.open_socket(timeout=timeout, port=port)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.key = key or base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: " + self.key + b"\r\n"
                          b"Sec-WebSocket-Version: 13\r\n" + headers + b"\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0] else 0
        self.header_lines = lines[1:]
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.inflater = zlib.decompressobj(wbits=-15)

    def accept_ok(self):
        want = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
        return self.headers.get("sec-websocket-accept") == want

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
        b0 = (0x80 if fin else 0) | rsv | opcode
        n = len(payload) if length is None else length
        m = 0x80 if mask else 0
        if n < 126:
            head = bytes([b0, m | n])
        elif n < 65536:
            head = bytes([b0, m | 126]) + struct.pack(">H", n)
        else:
            head = bytes([b0, m | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            payload = key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        self.sock.sendall(head + payload)

    def send_text(self, text):
        self.send_frame(1, text.encode())

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self):
        """(fin, rsv, opcode, payload) of the server's next frame."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames are never masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, payload

    def recv_message(self):
        """Skips pings; (opcode, payload), payload inflated when RSV1."""
        while True:
            fin, rsv, op, payload = self.recv_frame()
            if op == 9:
                continue
            if rsv & 0x40:
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            return op, payload

    def recv_close(self):
        """The close frame's (code, reason), skipping anything before it."""
        while True:
            _, _, op, payload = self.recv_frame()
            if op == 8:
                if len(payload) >= 2:
                    return struct.unpack(">H", payload[:2])[0], payload[2:].decode()
                return None, ""

    def assert_closed(self, timeout=5.0):
        """The server closes TCP after the close handshake."""
        self.sock.settimeout(timeout)
        rest = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return rest
            rest += chunk

    def read_body(self, timeout=10.0):
        """An HTTP response's body (a denial), read until the server
        closes; de-chunked when chunked."""
        self.sock.settimeout(timeout)
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        if self.headers.get("transfer-encoding") == "chunked":
            return dechunk(self.buf)
        return self.buf

    def close(self):
        self.sock.close()


def dechunk(data):
    """A whole chunked body (with its last chunk) decoded; AssertionError
    when it is cut."""
    out = b""
    while True:
        size, sep, rest = data.partition(b"\r\n")
        assert sep, "cut in a chunk size"
        n = int(size.split(b";")[0], 16)
        if n == 0:
            return out
        assert len(rest) >= n + 2, "cut in a chunk"
        out += rest[:n]
        data = rest[n + 2:]


def close_frame(code, reason=b""):
    return struct.pack(">H", code) + reason


def recorded(srv, name, timeout=5.0):
    path = srv.ws.state_path("ws-" + name)
    harness.wait_for(lambda: os.path.exists(path) and open(path).read(), timeout=timeout)
    with open(path) as f:
        return f.read().split("\n")[0]


# ---- handshake -----------------------------------------------------------------

def test_handshake_subprotocol_and_headers(wsrv):
    c = Client(wsrv, "/ws/echo", b"Sec-WebSocket-Protocol: other, chat\r\n")
    assert c.status == 101
    assert c.accept_ok()
    assert c.headers["upgrade"].lower() == "websocket"
    assert c.headers["sec-websocket-protocol"] == "chat"
    assert c.headers["x-ws-app"] == "yes"
    assert "sec-websocket-extensions" not in c.headers  # none offered
    c.close()


def test_scope(wsrv):
    c = Client(wsrv, "/ws/scope?x=1", b"Sec-WebSocket-Protocol: chat\r\n")
    op, payload = c.recv_message()
    s = json.loads(payload)
    assert s["type"] == "websocket"
    assert s["scheme"] == "ws"
    assert s["http_version"] == "1.1"
    assert s["path"] == "/ws/scope" and s["root_path"] == "/ws"
    assert s["raw_path"] == "/ws/scope"
    assert s["subprotocols"] == ["chat"]
    assert s["asgi"]["version"] == "3.0"
    assert "method" not in s
    assert s["client"][0] == "127.0.0.1" and s["server"][1] == wsrv.port
    assert s["state"] == {}
    assert s["extensions"] == {"websocket.http.response": {}}
    c.close()


def test_plain_http_to_a_websocket_app(wsrv):
    r = wsrv.get("/ws/echo")
    assert r.status == 200 and r.body == b"plain http"


def test_bad_handshakes(wsrv):
    r = wsrv.raw(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 8\r\n\r\n")
    assert r.status == 426 and r.header("Sec-WebSocket-Version") == "13"
    r = wsrv.raw(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert r.status == 400


def test_close_before_accept_is_403(wsrv):
    assert Client(wsrv, "/ws/deny").status == 403
    assert Client(wsrv, "/ws/return").status == 403


# ---- messages ------------------------------------------------------------------

def test_echo_text_and_binary(wsrv):
    c = Client(wsrv, "/ws/echo")
    c.send_text("h\u00e9llo")
    assert c.recv_message() == (1, "h\u00e9llo".encode())
    c.send_frame(2, b"\x00\xff" * 1000)
    assert c.recv_message() == (2, b"\x00\xff" * 1000)
    c.send_frame(2, b"")
    assert c.recv_message() == (2, b"")
    c.close()


def test_fragmented_message_with_ping_between(wsrv):
    c = Client(wsrv, "/ws/echo")
    snow = "\u2603\U0001d11e".encode()
    c.send_frame(1, snow[:2], fin=False)  # split inside a character
    c.send_frame(9, b"are you there")
    c.send_frame(0, snow[2:5], fin=False)
    c.send_frame(0, snow[5:])
    fin, rsv, op, payload = c.recv_frame()
    assert (op, payload) == (10, b"are you there")
    assert c.recv_message() == (1, snow)
    c.close()


def test_big_message_from_the_app(wsrv):
    c = Client(wsrv, "/ws/echo")
    c.send_text("big")
    assert c.recv_message() == (2, b"z" * 300000)
    c.close()


# ---- closing -------------------------------------------------------------------

def test_client_closes(wsrv):
    c = Client(wsrv, "/ws/echo?client-close-" + wsrv.mpm)
    c.send_frame(8, close_frame(1000, b"done"))
    assert c.recv_close() == (1000, "")
    c.assert_closed()
    assert recorded(wsrv, "client-close-" + wsrv.mpm) == "disconnect 1000"


def test_client_closes_with_private_code(wsrv):
    c = Client(wsrv, "/ws/echo?client-4100-" + wsrv.mpm)
    c.send_frame(8, close_frame(4100))
    assert c.recv_close()[0] == 4100
    assert recorded(wsrv, "client-4100-" + wsrv.mpm) == "disconnect 4100"


def test_app_closes(wsrv):
    c = Client(wsrv, "/ws/echo?app-close-" + wsrv.mpm)
    c.send_text("close:4001:bye now")
    assert c.recv_close() == (4001, "bye now")
    c.send_frame(8, close_frame(4001))
    c.assert_closed()
    assert recorded(wsrv, "app-close-" + wsrv.mpm) == "disconnect 4001"


def test_app_returns_closes_1000_and_raise_closes_1011(wsrv):
    c = Client(wsrv, "/ws/echo")
    c.send_text("return")
    assert c.recv_close()[0] == 1000
    mark = wsrv.log_mark()
    c = Client(wsrv, "/ws/echo")
    c.send_text("raise")
    assert c.recv_close()[0] == 1011
    wsrv.wait_log_text(mark, "asked to raise")


def test_client_vanishes(wsrv):
    c = Client(wsrv, "/ws/echo?vanish-" + wsrv.mpm)
    c.send_text("x")
    assert c.recv_message() == (1, b"x")
    c.close()
    assert recorded(wsrv, "vanish-" + wsrv.mpm) == "disconnect 1006"


# ---- protocol errors ----------------------------------------------------------

@pytest.mark.parametrize("case,code", [
    ("unmasked", 1002), ("rsv2", 1002), ("rsv1-no-deflate", 1002),
    ("opcode3", 1002), ("big-ping", 1002), ("fragmented-ping", 1002),
    ("continuation-first", 1002), ("bad-close-code", 1002),
    ("bad-utf8", 1007), ("bad-utf8-fragmented", 1007), ("too-big", 1009),
])
def test_protocol_errors(wsrv, case, code):
    c = Client(wsrv, "/ws/echo?err-%s-%s" % (case, wsrv.mpm))
    if case == "unmasked":
        c.send_frame(1, b"hi", mask=False)
    elif case == "rsv2":
        c.send_frame(1, b"hi", rsv=0x20)
    elif case == "rsv1-no-deflate":
        c.send_frame(1, b"hi", rsv=0x40)
    elif case == "opcode3":
        c.send_frame(3, b"hi")
    elif case == "big-ping":
        c.send_frame(9, b"p" * 126)
    elif case == "fragmented-ping":
        c.send_frame(9, b"p", fin=False)
    elif case == "continuation-first":
        c.send_frame(0, b"hi")
    elif case == "bad-close-code":
        c.send_frame(8, close_frame(1005))
    elif case == "bad-utf8":
        c.send_frame(1, b"\xed\xa0\x80")
    elif case == "bad-utf8-fragmented":
        c.send_frame(1, b"ok \xe2\x82", fin=False)
        c.send_frame(0, b"x")
    elif case == "too-big":
        c.send_frame(2, b"", length=65537)  # the header alone is enough
    assert c.recv_close() == (code, "")
    c.assert_closed()
    assert recorded(wsrv, "err-%s-%s" % (case, wsrv.mpm)) == "disconnect %d" % code


def test_storm_of_bad_clients_then_echo(wsrv):
    for i in range(40):
        c = Client(wsrv, "/ws/echo")
        kind = i % 4
        if kind == 0:
            c.sock.sendall(os.urandom(64))
        elif kind == 1:
            c.send_frame(1, b"x", mask=False)
        elif kind == 2:
            c.sock.sendall(b"\x81\xff" + b"\x7f" * 8)  # a 2^63-ish length
        c.close()
    # half-handshakes too
    for _ in range(10):
        s = wsrv.open_socket()
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        s.close()
    c = Client(wsrv, "/ws/echo")
    c.send_text("still here")
    assert c.recv_message() == (1, b"still here")
    c.close()
    assert not harness.CRASH_RE.search(wsrv.error_log()) if hasattr(harness, "CRASH_RE") else True


# ---- permessage-deflate and the per-vhost directives ------------------------------

def test_permessage_deflate(wsrv):
    c = Client(wsrv, "/ws/echo", b"Sec-WebSocket-Extensions: permessage-deflate; "
               b"client_max_window_bits\r\n")
    assert c.headers["sec-websocket-extensions"] == "permessage-deflate"
    comp = zlib.compressobj(wbits=-15)
    for text in ("hello " * 50, "hello " * 50 + "again"):
        data = comp.compress(text.encode()) + comp.flush(zlib.Z_SYNC_FLUSH)
        c.send_frame(1, data[:-4], rsv=0x40)  # context taken over
        fin, rsv, op, payload = c.recv_frame()
        assert rsv == 0x40 and op == 1
        assert len(payload) < 100  # compressed
        assert c.inflater.decompress(payload + b"\x00\x00\xff\xff") == text.encode()
    c.close()


def test_permessage_deflate_params(wsrv):
    c = Client(wsrv, "/ws/echo", b"Sec-WebSocket-Extensions: permessage-deflate; "
               b"server_max_window_bits=8, permessage-deflate; server_no_context_takeover; "
               b"server_max_window_bits=10\r\n")
    # 8 bits declined (zlib cannot), the second offer taken as offered
    assert c.headers["sec-websocket-extensions"] == \
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
    for _ in range(2):
        c.send_text("same " * 40)
        fin, rsv, op, payload = c.recv_frame()
        # no context takeover: each message inflates on its own
        assert zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff") \
            == b"same " * 40
    c.close()


def test_compressed_bomb_is_1009(wsrv):
    c = Client(wsrv, "/ws/echo", b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    comp = zlib.compressobj(wbits=-15)
    data = comp.compress(b"\0" * 1000000) + comp.flush(zlib.Z_SYNC_FLUSH)
    c.send_frame(2, data[:-4], rsv=0x40)
    assert c.recv_close() == (1009, "")


def test_compression_off(wsrv):
    c = Client(wsrv, "/ws/echo", b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
               port=wsrv.ports[1])
    assert c.status == 101
    assert "sec-websocket-extensions" not in c.headers
    c.send_text("plain")
    assert c.recv_frame() == (True, 0, 1, b"plain")
    c.close()


def test_keepalive_ping_timeout(wsrv):
    # PingInterval 1, PingTimeout 1 on the second port; this client never
    # answers pings.
    c = Client(wsrv, "/ws/echo?ping-" + wsrv.mpm, port=wsrv.ports[1])
    t0 = time.monotonic()
    fin, rsv, op, payload = c.recv_frame()
    assert op == 9
    assert c.recv_close() == (1011, "keepalive ping timeout")
    assert 1.5 < time.monotonic() - t0 < 8
    assert recorded(wsrv, "ping-" + wsrv.mpm) == "disconnect 1011"


def test_keepalive_ping_answered(wsrv):
    c = Client(wsrv, "/ws/echo", port=wsrv.ports[1])
    for _ in range(3):
        fin, rsv, op, payload = c.recv_frame()
        assert op == 9
        c.send_frame(10, payload)
    c.send_text("alive")
    assert c.recv_message() == (1, b"alive")
    c.close()


# ---- the denial response (asgiref's websocket.http.response extension) --------

def test_denial_response_status_headers_and_body(wsrv):
    name = "r401-" + wsrv.mpm
    mark = wsrv.log_mark()
    c = Client(wsrv, "/deny/401?" + name)
    assert c.status == 401
    assert c.headers["www-authenticate"] == 'Bearer realm="ws"'
    assert c.headers["content-type"] == "text/plain"
    assert [line for line in c.header_lines if line.lower().startswith("x-denied:")] \
        == ["x-denied: yes", "x-denied: twice"]
    assert "sec-websocket-accept" not in c.headers and "upgrade" not in c.headers
    # the connection ends with the denial (the extension says so)
    assert c.headers["connection"] == "close"
    assert c.read_body() == b"no token, no socket"
    # the app's receive() after its response: the connection is over
    assert json.loads(recorded(wsrv, name)) == \
        {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    assert not wsrv.log_entries_since(mark), wsrv.log_since(mark)


def test_denial_response_extension_listed(wsrv):
    c = Client(wsrv, "/deny/ext")
    assert c.status == 418
    assert json.loads(c.read_body()) == ["websocket.http.response"]


def test_denial_response_streamed(wsrv):
    name = "stream-" + wsrv.mpm
    c = Client(wsrv, "/deny/stream?" + name)
    # no length: the body ends with the connection (which ends anyway)
    assert c.status == 429 and "content-length" not in c.headers
    # the first piece arrives while the app waits for this test to see it
    c.sock.settimeout(10)
    while b"one," not in c.buf:
        chunk = c.sock.recv(65536)
        assert chunk, c.buf
        c.buf += chunk
    with open(wsrv.ws.state_path("ws-go-" + name), "w"):
        pass
    assert c.read_body() == b"one,two,three"
    assert json.loads(recorded(wsrv, name))["type"] == "websocket.disconnect"


def test_denial_response_to_a_client_library(wsrv):
    websockets = pytest.importorskip("websockets")
    from websockets.asyncio.client import connect

    async def talk():
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect("ws://127.0.0.1:%d/deny/401" % wsrv.port):
                pass
        return info.value.response

    response = asyncio.run(asyncio.wait_for(talk(), 30))
    assert response.status_code == 401
    assert response.headers.get_all("X-Denied") == ["yes", "twice"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ws"'
    assert response.body == b"no token, no socket"


@pytest.mark.parametrize("path,problem", [
    ("/deny/body-first", "websocket.http.response.body before websocket.http.response.start"),
    ("/deny/start-twice", "websocket.http.response.start sent twice"),
    ("/deny/bad-status", "status must be an int"),
    ("/deny/bad-headers", "must be bytes"),
    ("/deny/bad-body", "body must be bytes"),
    ("/deny/accept-after-start", "websocket.accept after websocket.http.response.start"),
    ("/deny/close-after-start", "websocket.close after websocket.http.response.start"),
])
def test_denial_response_invalid_sequences(wsrv, path, problem):
    mark = wsrv.log_mark()
    c = Client(wsrv, path)
    assert c.status == 500
    entries = wsrv.wait_log_entries(mark, count=1)
    assert len(entries) == 1, entries
    assert "PYH0204" in entries[0] and problem in wsrv.log_since(mark), wsrv.log_since(mark)


def test_denial_response_misuse_after_it_started(wsrv):
    # started, never ended: as an HTTP response the app never finished
    mark = wsrv.log_mark()
    assert Client(wsrv, "/deny/start-only").status == 500
    entries = wsrv.wait_log_entries(mark, count=1)
    assert len(entries) == 1 and "PYH0201" in entries[0], entries
    # a body after the complete response: the client has its response,
    # the log names the late message
    mark = wsrv.log_mark()
    c = Client(wsrv, "/deny/after-complete")
    assert c.status == 401 and c.read_body() == b"complete"
    entries = wsrv.wait_log_entries(mark, count=1)
    assert len(entries) == 1, entries
    assert "after the response was complete" in wsrv.log_since(mark)
    # after websocket.accept the HTTP response is gone: closed with 1011
    mark = wsrv.log_mark()
    c = Client(wsrv, "/deny/start-after-accept")
    assert c.status == 101
    assert c.recv_close()[0] == 1011
    entries = wsrv.wait_log_entries(mark, count=1)
    assert len(entries) == 1, entries
    assert "websocket.http.response.start after websocket.accept" in wsrv.log_since(mark)


# ---- wss://, a stopping server, a well-behaved client library -----------------

@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_wss_through_mod_ssl(wsrv):
    c = Client(wsrv, "/ws/scope", port=wsrv.ports[2], tls=True,
               headers=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert c.status == 101 and c.accept_ok()
    op, payload = c.recv_message()
    s = json.loads(payload)
    assert s["scheme"] == "wss"
    assert sorted(s["extensions"]) == ["tls", "websocket.http.response"]
    c.send_text("over tls " * 100)
    assert c.recv_message() == (1, ("over tls " * 100).encode())
    c.send_frame(8, close_frame(1000))
    assert c.recv_close()[0] == 1000
    c.assert_closed()


def test_graceful_restart_closes_open_websockets_with_1001(workspace):
    mpm = MPM_PARAMS[0]
    srv = ws_server(workspace, "asgi-ws-restart-" + mpm, mpm)
    srv.start()
    try:
        clients = [Client(srv, "/ws/echo") for _ in range(3)]
        for c in clients:
            c.send_text("hi")
            assert c.recv_message() == (1, b"hi")
        srv.graceful_restart()
        for c in clients:
            assert c.recv_close() == (1001, "server shutting down")
        c = Client(srv, "/ws/echo")
        c.send_text("new generation")
        assert c.recv_message() == (1, b"new generation")
        c.close()
        # An ungraceful stop closes the sockets itself; it must not wait for
        # (or SIGKILL) a child whose workers hold WebSockets.
        clients = [Client(srv, "/ws/echo") for _ in range(3)]
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 10
        assert "AH00046" not in srv.error_log()
    finally:
        if srv.running():
            srv.stop()


def test_websockets_library_client(wsrv):
    websockets = pytest.importorskip("websockets")
    from websockets.asyncio.client import connect

    async def talk():
        uri = "ws://127.0.0.1:%d/ws/echo" % wsrv.port
        async with connect(uri, subprotocols=["chat"], compression="deflate") as ws:
            assert ws.subprotocol == "chat"
            await ws.send("text " * 1000)
            assert await ws.recv() == "text " * 1000
            await ws.send(b"\x01" * 60000)
            assert await ws.recv() == b"\x01" * 60000
            await ws.send(["frag", "mented"])  # a fragmented message
            assert await ws.recv() == "fragmented"
            await ws.ping()
            await ws.send("close:4002:enough")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4002 and info.value.rcvd.reason == "enough"

    asyncio.run(asyncio.wait_for(talk(), 30))


# ---- HTTP/2 (RFC 8441, mod_http2's H2WebSockets) -------------------------------

class H2Client:
    """One extended-CONNECT WebSocket stream over h2 (TLS, ALPN)."""

    def __init__(self, srv, path):
        h2conn = pytest.importorskip("h2.connection")
        h2config = pytest.importorskip("h2.config")
        self.events = pytest.importorskip("h2.events")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(srv.open_socket(port=srv.ports[2]))
        if self.sock.selected_alpn_protocol() != "h2":
            pytest.skip("no h2 on this MPM")
        self.conn = h2conn.H2Connection(h2config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.data = b""
        self.ended = False
        while not self.conn.remote_settings.get(8):  # ENABLE_CONNECT_PROTOCOL
            self.pump()
        self.conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"),
                                   (":scheme", "https"), (":path", path),
                                   (":authority", "localhost"),
                                   ("sec-websocket-version", "13")])
        self.sock.sendall(self.conn.data_to_send())
        self.status = None
        while self.status is None:
            for e in self.pump():
                if isinstance(e, self.events.ResponseReceived):
                    self.header_list = list(e.headers)
                    self.headers = dict(e.headers)
                    self.status = int(self.headers[b":status"])

    def pump(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        evs = self.conn.receive_data(chunk)
        for e in evs:
            if isinstance(e, self.events.DataReceived):
                self.data += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, 1)
            if isinstance(e, (self.events.StreamEnded, self.events.StreamReset)):
                self.ended = True
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)
        return evs

    def send_frame(self, opcode, payload, end_stream=False):
        key = os.urandom(4)
        frame = bytes([0x80 | opcode, 0x80 | len(payload)]) + key + \
            bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        self.conn.send_data(1, frame, end_stream=end_stream)
        self.sock.sendall(self.conn.data_to_send())

    def end_stream(self):
        self.conn.end_stream(1)
        self.sock.sendall(self.conn.data_to_send())

    def read_to_end(self):
        """The response body, once the server has ended its stream."""
        while not self.ended:
            self.pump()
        return self.data

    def recv_frame(self):
        while len(self.data) < 2 or len(self.data) < 2 + (self.data[1] & 0x7F):
            if self.ended:
                raise EOFError("stream ended")
            self.pump()
        n = self.data[1] & 0x7F
        op, payload = self.data[0] & 0x0F, self.data[2:2 + n]
        self.data = self.data[2 + n:]
        return op, payload


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_http2_websocket(wsrv):
    if wsrv.mpm == "prefork":
        pytest.skip("mod_http2 does not serve h2 under prefork")
    c = H2Client(wsrv, "/ws/echo?h2-" + wsrv.mpm)
    assert c.status == 200
    c.send_frame(1, b"hello h2")
    assert c.recv_frame() == (1, b"hello h2")
    c.send_frame(9, b"p")
    assert c.recv_frame() == (10, b"p")
    c.send_frame(8, close_frame(4003, b"h2 bye"))
    assert c.recv_frame() == (8, close_frame(4003))
    assert recorded(wsrv, "h2-" + wsrv.mpm) == "disconnect 4003"
    # a second stream's client just ends its stream (after its echo came
    # back: an END_STREAM with the data races the echo, and the server may
    # close first, which is its right after the client's abrupt end)
    c = H2Client(wsrv, "/ws/echo?h2-end-" + wsrv.mpm)
    c.send_frame(1, b"x")
    assert c.recv_frame() == (1, b"x")
    c.end_stream()
    assert recorded(wsrv, "h2-end-" + wsrv.mpm) == "disconnect 1006"


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_http2_denial_response(wsrv):
    if wsrv.mpm == "prefork":
        pytest.skip("mod_http2 does not serve h2 under prefork")
    name = "h2-401-" + wsrv.mpm
    c = H2Client(wsrv, "/deny/401?" + name)
    assert c.status == 401
    assert [v for k, v in c.header_list if k == b"x-denied"] == [b"yes", b"twice"]
    assert c.headers[b"www-authenticate"] == b'Bearer realm="ws"'
    assert c.read_to_end() == b"no token, no socket"
    assert json.loads(recorded(wsrv, name))["code"] == 1006
    c = H2Client(wsrv, "/deny/stream?h2-stream-" + wsrv.mpm)
    assert c.status == 429
    while b"one," not in c.data:
        c.pump()
    with open(wsrv.ws.state_path("ws-go-h2-stream-" + wsrv.mpm), "w"):
        pass
    assert c.read_to_end() == b"one,two,three"
    # RFC 8441: a 2xx opens the tunnel, so mod_http2 answers a 2xx denial
    # with a 502 of its own (README says so)
    assert H2Client(wsrv, "/deny/2xx").status == 502
