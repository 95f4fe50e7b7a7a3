"""Writes the seed inputs of tests/fuzz/corpus/ (run from anywhere:
`python3 tests/fuzz/make_corpus.py`). Frames follow module/relay.h's layout
the way relay.c builds them (host order, records of u32 length, u8 kind, the
bytes and a NUL); the input target's layout is in fuzz_input.c. Seeds are
named seed-*; what fuzzing found and was kept (scripts/fuzz.sh with
FUZZ_MERGE=1) has libFuzzer's hash names, and regressions are named
regress-*. This script rewrites the seed-* and regress-* files it makes."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# enum pyh_key in module/pyhost.h, in order.
KEYS = """REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING CONTENT_TYPE
CONTENT_LENGTH SERVER_NAME SERVER_PORT SERVER_PROTOCOL SERVER_SOFTWARE
SERVER_ADDR SERVER_ADMIN REMOTE_ADDR REMOTE_PORT REMOTE_USER AUTH_TYPE
REQUEST_URI REQUEST_SCHEME SCRIPT_FILENAME DOCUMENT_ROOT CONTEXT_PREFIX
CONTEXT_DOCUMENT_ROOT GATEWAY_INTERFACE""".split()
K = {name: i for i, name in enumerate(KEYS)}
(R_HEADER_NAME, R_HEADER_VALUE, R_ENV_NAME, R_ENV_VALUE, R_FILENAME,
 R_CALLABLE, R_APP_GROUP, R_URI, R_STATUS_LINE, R_CONTENT_TYPE) = range(100, 110)
Q_HEADER_ONLY, Q_RELOADING, Q_ERROR_OVERRIDE, Q_PASS_AUTH, Q_CHUNKED = 1, 2, 4, 8, 16


def rec(kind, value):
    value = value.encode("latin-1") if isinstance(value, str) else value
    return struct.pack("=IB", len(value), kind) + value + b"\0"


def q_payload(vars, headers=(), env=(), filename="/srv/app/wsgi.py",
              callable=None, app_group="", uri=None, flags=0):
    out = bytearray(bytes(range(16)))          # secret
    out += struct.pack("=Iiqq", flags, 0, 1733600000000000, 1733600001000000)
    for name, value in vars.items():
        out += rec(K[name], value)
    for name, value in headers:
        out += rec(R_HEADER_NAME, name) + rec(R_HEADER_VALUE, value)
    for name, value in env:
        out += rec(R_ENV_NAME, name) + rec(R_ENV_VALUE, value)
    if filename is not None:
        out += rec(R_FILENAME, filename)
    if callable:
        out += rec(R_CALLABLE, callable)
    if app_group is not None:
        out += rec(R_APP_GROUP, app_group)
    if uri:
        out += rec(R_URI, uri)
    return bytes(out)


def frame(kind, payload=b""):
    return struct.pack("=B3xI", ord(kind), len(payload)) + payload


def h_payload(status, headers=(), status_line=None, content_type=None,
              close=0, content_length=-1):
    out = struct.pack("=iIq", status, close, content_length)
    if status_line:
        out += rec(R_STATUS_LINE, status_line)
    if content_type:
        out += rec(R_CONTENT_TYPE, content_type)
    for name, value in headers:
        out += rec(R_HEADER_NAME, name) + rec(R_HEADER_VALUE, value)
    return out


def u32(n):
    return struct.pack("=I", n)


def i32(n):
    return struct.pack("=i", n)


BASE = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/app", "PATH_INFO": "/hello",
    "QUERY_STRING": "a=1&b=2", "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
    "SERVER_SOFTWARE": "Apache/2.4", "SERVER_ADDR": "127.0.0.1",
    "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40312",
    "REQUEST_URI": "/app/hello?a=1&b=2", "REQUEST_SCHEME": "http",
    "SCRIPT_FILENAME": "/srv/app/wsgi.py", "DOCUMENT_ROOT": "/var/www/html",
    "GATEWAY_INTERFACE": "CGI/1.1",
}


def requests():
    post = dict(BASE, REQUEST_METHOD="POST", CONTENT_TYPE="application/json",
                CONTENT_LENGTH="13", QUERY_STRING="", REQUEST_URI="/app/hello")
    yield "get", q_payload(BASE, headers=[("Host", "127.0.0.1:8080"),
                                         ("User-Agent", "curl/8.0"),
                                         ("Accept", "*/*")],
                           env=[("UNIQUE_ID", "Z1x"), ("HTTPS", "off")],
                           uri="/app/hello")
    yield "post-chunked", q_payload(
        post, headers=[("Host", "h"), ("Transfer-Encoding", "chunked"),
                       ("Cookie", "a=b; c=d"), ("Cookie", "e=f")],
        callable="app", app_group="grp", flags=Q_CHUNKED | Q_PASS_AUTH)
    yield "head", q_payload(dict(BASE, REQUEST_METHOD="HEAD"),
                            flags=Q_HEADER_ONLY | Q_RELOADING | Q_ERROR_OVERRIDE)
    yield "minimal", q_payload({"REQUEST_METHOD": "GET"}, app_group=None)
    yield "empty-values", q_payload({"REQUEST_METHOD": "", "PATH_INFO": ""},
                                    headers=[("", "")], filename="")
    # Malformed: each must be refused.
    good = q_payload({"REQUEST_METHOD": "GET"}, headers=[("X", "1")])
    yield "bad-truncated", good[:-3]
    yield "bad-no-nul", good[:-1] + b"x"
    yield "bad-long-len", good[:40] + struct.pack("=IB", 0xFFFFFFF0, 0) + b"GET\0"
    yield "bad-dangling-name", q_payload({"REQUEST_METHOD": "GET"}) + rec(R_HEADER_NAME, "X")
    yield "bad-value-first", q_payload({"REQUEST_METHOD": "GET"}) + rec(R_HEADER_VALUE, "v")
    yield "bad-unknown-kind", q_payload({"REQUEST_METHOD": "GET"}) + rec(99, "?")
    yield "bad-short", bytes(range(20))


def responses():
    ok = h_payload(200, [("Content-Type", "text/plain")], status_line="200 OK",
                   content_type="text/plain", content_length=5)
    yield "hello", frame("H", ok) + frame("D", b"hello") + frame("E")
    yield "post-echo", (frame("R", u32(65536)) + frame("R", u32(65536))
                        + frame("H", h_payload(201, [("Location", "/x")],
                                               status_line="201 Created"))
                        + frame("D", b"a" * 300) + frame("F") + frame("D", b"b")
                        + frame("E"))
    yield "cookies", frame("H", h_payload(
        302, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Location", "/")],
        status_line="302 Found", content_type="text/html; charset=utf-8",
        close=1)) + frame("E")
    yield "status-500", frame("S", i32(500))
    yield "status-503-after-read", frame("R", u32(4096)) + frame("S", i32(503))
    yield "goodbye", frame("G")
    yield "abort-after-headers", frame("H", h_payload(200)) + frame("D", b"x") + frame("A")
    yield "abort-first", frame("A")
    # Malformed: each must be refused.
    yield "bad-data-first", frame("D", b"x") + frame("E")
    yield "bad-headers-twice", frame("H", ok) + frame("H", ok) + frame("E")
    yield "bad-status-after-headers", frame("H", ok) + frame("S", i32(500))
    yield "bad-late-goodbye", frame("H", ok) + frame("G")
    yield "bad-status-0", frame("S", i32(0))
    yield "bad-empty-headers", frame("H") + frame("E")
    yield "bad-huge-frame", struct.pack("=B3xI", ord("D"), 0xFFFFFFFF)
    yield "bad-truncated-payload", frame("H", ok)[:-4]


def inputs():
    def op(code, arg=0xFFFF):
        return bytes([code]) + struct.pack("<H", arg)

    def pieces(*chunks, end=True):
        out = b"".join(bytes([len(c)]) + c for c in chunks)
        return out + (b"\0" if end else b"")

    READ_ALL, READ, READLINE_ALL, READLINE, READLINES, NEXT = range(6)
    lines = pieces(b"first li", b"ne\nsecond\n", b"\nthird", b" no newline")
    yield "lines-cl", bytes([0, 5]) + op(READLINE_ALL) + op(READLINE, 3) \
        + op(NEXT) + op(READLINES) + op(READ_ALL) + op(READ, 2) + lines
    yield "lines-chunked", bytes([1, 3]) + op(NEXT) + op(READ, 4) \
        + op(READLINES, 10) + op(READ_ALL) + lines
    yield "read-sizes", bytes([0, 4]) + op(READ, 1) + op(READ, 100) \
        + op(READ, 0) + op(READ_ALL) + pieces(b"x" * 200, b"y" * 100)
    yield "big-read-arg", bytes([1, 2]) + op(READ, 0xFFFE) + op(READ_ALL) \
        + pieces(b"abc\n" * 30)
    yield "client-fails", bytes([0, 3]) + op(READLINE_ALL) + op(READ_ALL) \
        + op(READ, 5) + b"\x05hello\xff"
    yield "claim-longer", bytes([2, 2]) + struct.pack("=q", 100) \
        + op(READ_ALL) + op(READLINE_ALL) + pieces(b"short\n")
    yield "claim-shorter", bytes([2, 3]) + struct.pack("=q", 3) \
        + op(READLINE_ALL) + op(READ_ALL) + op(NEXT) + pieces(b"longer line\nmore")
    yield "no-body", bytes([3, 2]) + op(READ_ALL) + op(READLINE_ALL)
    yield "long-line", bytes([1, 2]) + op(READLINE_ALL) + op(READLINE_ALL) \
        + pieces(*([b"z" * 254] * 40), b"\nend")


def input_regressions():
    """Inputs that found faults (kept under these names, see README.md)."""
    def op(code, arg=0xFFFF):
        return bytes([code]) + struct.pack("<H", arg)

    READ_ALL, READ, READLINE_ALL, READLINE = range(4)
    # UBSan: readline() before any read-ahead did arithmetic on a NULL
    # buffer (and memcpy from it): issue 12, fixed by the input branch.
    yield "readline-first", bytes([1, 2]) + op(READLINE, 0) + op(READLINE_ALL) \
        + b"\x03ab\n\x00"
    # ASan: read() allocated what Content-Length claimed (here 2^63 - 1)
    # before any byte came (issue 12; fixed by the input branch).
    yield "claim-huge", bytes([2, 1]) + struct.pack("=q", 2**63 - 1) \
        + op(READ_ALL) + b"\x06short\n\x00"


def write(target, items, prefix="seed-"):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith(prefix):
            os.unlink(os.path.join(d, f))
    for name, data in items:
        with open(os.path.join(d, prefix + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("fuzz_relay_request", requests())
    write("fuzz_relay_response", responses())
    write("fuzz_input", inputs())
    write("fuzz_input", input_regressions(), prefix="regress-")
