"""Malformed requests: smuggling and framing cases (RFC 9112) sent on raw
sockets to an app that reads its whole body, in embedded mode (every MPM)
and daemon mode. Each case must get the status Apache gives it, exactly one
response (a second one would be a request smuggled in the body), and no
process may die.

The corpus is data: (name, raw request, statuses the app's URL answers).
@PATH@ is the URL. Every request is followed by a half-close, so a body
shorter than its framing claims ends at once instead of after Timeout.

Where a static file answers differently, STATIC lists it with the reason:
pyhost refuses, before the app runs and as mod_wsgi does, any transfer
coding other than a lone `chunked` (501), while Apache's own check only
wants `chunked` last and decodes one layer of it."""

import re
import socket
import time

import pytest

import harness
from conftest import _selected_mpms

H = b"POST @PATH@ HTTP/1.1\r\nHost: t\r\n"
CHUNKED = b"3\r\nabc\r\n0\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


def req(headers=b"", body=b"", head=H):
    return head + headers + b"\r\n" + body


def te(value, body=CHUNKED):
    return req(b"Transfer-Encoding: " + value + b"\r\n", body)


def cl(value, body=b"abc"):
    return req(b"Content-Length: " + value + b"\r\n", body)


CASES = [
    # well-formed, for reference
    ("cl", cl(b"3"), {200}),
    ("chunked", te(b"chunked"), {200}),
    ("cl_leading_zero", cl(b"03"), {200}),
    ("te_lowercase_name", req(b"transfer-encoding: chunked\r\n", CHUNKED), {200}),
    ("te_uppercase_value", te(b"CHUNKED"), {200}),
    # Content-Length and Transfer-Encoding together: chunked wins, the
    # connection is closed after the answer, the rest is never a request.
    ("cl_te", req(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                  b"0\r\n\r\n" + SMUGGLED), {200}),
    ("te_cl", req(b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
                  b"0\r\n\r\n" + SMUGGLED), {200}),
    ("cl_zero_te", req(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                       b"5\r\nabcde\r\n0\r\n\r\n" + SMUGGLED), {200}),
    ("cl_te_xchunked", req(b"Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n",
                           b"0\r\n\r\n" + SMUGGLED), {400}),
    # obfuscated Transfer-Encoding
    ("te_xchunked", te(b"xchunked"), {400}),
    ("te_chunkedx", te(b"chunkedx"), {400}),
    ("te_quoted", te(b'"chunked"'), {400}),
    ("te_leading_spaces", te(b" chunked"), {200}),
    ("te_tab_before_value", req(b"Transfer-Encoding:\tchunked\r\n", CHUNKED), {200}),
    ("te_tab_after_value", te(b"chunked\t"), {200}),
    ("te_vertical_tab", te(b"\x0bchunked"), {400}),
    ("te_space_before_colon", req(b"Transfer-Encoding : chunked\r\n", CHUNKED), {400}),
    ("te_obs_fold", req(b"Transfer-Encoding:\r\n chunked\r\n", CHUNKED), {200}),
    ("te_empty", te(b""), {400}),
    ("te_chunked_chunked", te(b"chunked, chunked"), {501}),
    ("te_twice", req(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                     CHUNKED), {501}),
    ("te_gzip_chunked", te(b"gzip, chunked"), {501}),
    ("te_identity_chunked", te(b"identity, chunked"), {501}),
    ("te_chunked_gzip", te(b"chunked, gzip"), {400}),
    ("te_chunked_then_identity",
     req(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", CHUNKED), {400}),
    # RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
    # framing and the connection must close after it; Apache decodes it
    # and closes (no keep-alive without the client asking for it).
    ("te_http10", b"POST @PATH@ HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     + CHUNKED, {200}),
    ("te_identity", req(b"Transfer-Encoding: identity\r\nContent-Length: 3\r\n", b"abc"),
     {400}),
    # Content-Length: duplicated, conflicting, signed, huge
    ("cl_twice_same", req(b"Content-Length: 3\r\nContent-Length: 3\r\n", b"abc"), {400}),
    ("cl_twice_conflicting", req(b"Content-Length: 3\r\nContent-Length: 4\r\n", b"abcd"),
     {400}),
    ("cl_list", cl(b"3, 3"), {400}),
    ("cl_no_space", req(b"Content-Length:3\r\n", b"abc"), {200}),
    ("cl_space_before_colon", req(b"Content-Length : 3\r\n", b"abc"), {400}),
    ("cl_negative", cl(b"-1"), {400}),
    ("cl_plus", cl(b"+3"), {400}),
    ("cl_hex", cl(b"0x3"), {400}),
    ("cl_inner_space", cl(b"1 2"), {400}),
    ("cl_empty", cl(b""), {400}),
    ("cl_int64_max", cl(b"9223372036854775807"), {413}),
    ("cl_2_40", cl(b"1099511627776"), {413}),
    ("cl_over_int64", cl(b"9223372036854775808"), {400}),
    ("cl_over_uint64", cl(b"18446744073709551616"), {400}),
    ("cl_body_short", cl(b"10"), {400}),
    # refused before any 100 Continue: one response, not two
    ("cl_huge_expect_100", req(b"Content-Length: 9223372036854775807\r\n"
                               b"Expect: 100-continue\r\n", b""), {413}),
    # line endings
    ("bare_lf", b"POST @PATH@ HTTP/1.1\nHost: t\nContent-Length: 3\n\nabc", {400}),
    ("bare_lf_one_header", b"POST @PATH@ HTTP/1.1\r\nHost: t\nContent-Length: 3\r\n\r\nabc",
     {400}),
    ("bare_cr", b"POST @PATH@ HTTP/1.1\rHost: t\r\nContent-Length: 3\r\n\r\nabc", {400}),
    # NUL and control bytes
    ("nul_in_header_value", req(b"X-A: a\x00b\r\nContent-Length: 3\r\n", b"abc"), {400}),
    ("nul_in_header_name", req(b"X-\x00A: b\r\nContent-Length: 3\r\n", b"abc"), {400}),
    ("nul_in_target", b"POST @PATH@\x00x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
     {400}),
    ("nul_in_method", b"PO\x00ST @PATH@ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
     {400}),
    ("ctl_in_header_value", req(b"X-A: a\x01b\r\nContent-Length: 3\r\n", b"abc"), {400}),
    # sizes (LimitRequestFieldSize, LimitRequestFields, LimitRequestLine)
    ("header_too_long", req(b"X-Long: " + b"a" * 9000 + b"\r\nContent-Length: 3\r\n", b"abc"),
     {400}),
    ("too_many_headers",
     req(b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"Content-Length: 3\r\n", b"abc"),
     {400}),
    ("request_line_too_long",
     b"POST @PATH@?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
     {414}),
    # request line and Host
    ("no_host", b"POST @PATH@ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", {400}),
    ("two_hosts", req(b"Host: u\r\nContent-Length: 3\r\n", b"abc"), {400}),
    ("no_version", b"POST @PATH@\r\n\r\n", {400}),
    ("bad_version", b"POST @PATH@ HTTP/1.1x\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", {400}),
    # chunk sizes
    ("chunk_size_not_hex", te(b"chunked", b"zz\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk_size_negative", te(b"chunked", b"-3\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk_size_empty", te(b"chunked", b"\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk_size_0x", te(b"chunked", b"0x3\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk_size_int64_max", te(b"chunked", b"7fffffffffffffff\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk_size_2_63", te(b"chunked", b"8000000000000000\r\nabc\r\n0\r\n\r\n"), {413}),
    ("chunk_size_overflow", te(b"chunked", b"fffffffffffffffff\r\nabc\r\n0\r\n\r\n"), {413}),
    ("chunk_size_trailing_space", te(b"chunked", b"3 \r\nabc\r\n0\r\n\r\n"), {200}),
    ("chunk_size_leading_zeros", te(b"chunked", b"0003\r\nabc\r\n0\r\n\r\n"), {200}),
    ("chunk_extension", te(b"chunked", b"3;name=val\r\nabc\r\n0\r\n\r\n"), {200}),
    ("chunk_bare_lf", te(b"chunked", b"3\nabc\n0\n\n"), {400}),
    ("chunk_data_too_long", te(b"chunked", b"3\r\nabcdef\r\n0\r\n\r\n"), {400}),
    # truncated chunked bodies
    ("chunk_truncated_data", te(b"chunked", b"10\r\nabc"), {400}),
    ("chunk_no_last_chunk", te(b"chunked", b"3\r\nabc\r\n"), {400}),
    ("chunk_no_final_crlf", te(b"chunked", b"3\r\nabc\r\n0\r\n"), {400}),
    # trailers
    ("chunk_trailer", te(b"chunked", b"3\r\nabc\r\n0\r\nX-T: v\r\n\r\n"), {200}),
    ("chunk_trailer_cl", te(b"chunked", b"3\r\nabc\r\n0\r\nContent-Length: 99\r\n\r\n"),
     {200}),
    ("chunk_trailer_nul", te(b"chunked", b"3\r\nabc\r\n0\r\nX-T: a\x00b\r\n\r\n"), {400}),
]

# A static file (Apache's default handler discards the body) where it
# answers differently from the app's URL; see the module docstring.
STATIC = {
    "te_chunked_chunked": {200},
    "te_twice": {200},
    "te_gzip_chunked": {200},
    "te_identity_chunked": {200},
}

CASE_IDS = [c[0] for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)

CONF = r"""
WSGIDaemonProcess malformed processes=1 threads=4
WSGIScriptAlias /embedded @APPS@/echo_body.wsgi
WSGIScriptAlias /daemon @APPS@/echo_body.wsgi process-group=malformed
<LocationMatch "^/(embedded|daemon)$">
    WSGIChunkedRequest On
</LocationMatch>
"""

# PYH0040: a daemon killed by a signal; PYH0041: one that exited (nothing
# here recycles daemons, so any exit is a death).
DEATH_RE = re.compile(harness.CRASH_RE.pattern + r"|PYH0040|PYH0041|killed by signal")
STATUS_LINE_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@pytest.fixture(scope="module", params=_selected_mpms())
def mserver(request, workspace):
    srv = harness.Apache(workspace, "malformed-" + request.param, mpm=request.param,
                         extra=CONF)
    srv.start()
    srv.started_mark = srv.log_mark()
    yield srv
    srv.stop()


def send(srv, raw, timeout=10.0):
    """The raw request, a half-close, and everything until the server
    closes: the statuses of every response in it."""
    data = b""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # Apache may answer and close before reading it all
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError("no close within %ss: %r" % (timeout, data[:300]))
            if not chunk:
                break
            data += chunk
    return [int(m) for m in STATUS_LINE_RE.findall(data)], data


def check_case(srv, path, name, raw, expected):
    mark = srv.log_mark()
    statuses, data = send(srv, raw.replace(b"@PATH@", path))
    # One request in, one response out: a second would be the request
    # smuggled in the body, or a body read as a request.
    assert len(statuses) == 1, (name, path, data[:600])
    assert statuses[0] in expected, (name, path, data[:600])
    # and nothing after Apache's error page (a second page, the app's body)
    assert data.count(b"<!DOCTYPE") <= 1, (name, path, data)
    if statuses[0] == 200 and path != b"/ping.txt":
        # the app ran and read a body: its length and digest
        assert re.search(rb"\r\n\r\n\d+ [0-9a-f]{16}\n$", data), data
    assert not DEATH_RE.search(srv.log_since(mark)), srv.log_since(mark)


@pytest.mark.parametrize("name,raw,expected", CASES, ids=CASE_IDS)
def test_embedded(mserver, name, raw, expected):
    check_case(mserver, b"/embedded", name, raw, expected)


@pytest.mark.parametrize("name,raw,expected", CASES, ids=CASE_IDS)
def test_daemon(mserver, name, raw, expected):
    check_case(mserver, b"/daemon", name, raw, expected)


@pytest.mark.parametrize("name,raw,expected", CASES, ids=CASE_IDS)
def test_static_file_reference(mserver, name, raw, expected):
    # The same case against a static file: where Apache alone answers
    # otherwise than the app's URL, STATIC says so and why (docstring).
    check_case(mserver, b"/ping.txt", name, raw, STATIC.get(name, expected))


def test_nothing_died_and_server_still_answers(mserver):
    # After the whole corpus: a child or daemon that died is logged by the
    # parent when it reaps it, which may take a moment.
    time.sleep(1.5)
    log = mserver.log_since(mserver.started_mark)
    assert not DEATH_RE.search(log), log[-3000:]
    for path in ("/embedded", "/daemon"):
        r = mserver.post(path, b"abc")
        assert r.status == 200, r
    assert mserver.get("/ping.txt").status == 200
