# Response-side PEP 3333 behaviour, one case per PATH_INFO: write(), exc_info,
# file_wrapper, HEAD, streaming generators and close() accounting.
import io
import os
import sys
import time

STATE = "@STATE_DIR@"
DATA_FILE = "@DATA_FILE@"


def _token(environ):
    tok = environ.get("QUERY_STRING", "")
    if not tok.isalnum():
        raise ValueError("bad token %r" % tok)
    return tok


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"one-")
    write(b"two-")
    return [b"tail"]


def write_only(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"only-written")
    return []


def empty_first(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"", b"after-empty", b""])


def exc_before(environ, start_response):
    # Headers not sent yet: a second start_response with exc_info replaces them.
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise RuntimeError("handled by the app")
    except RuntimeError:
        start_response("503 Handled", [("Content-Type", "text/plain"), ("X-Second", "yes")],
                       sys.exc_info())
    return [b"handled"]


def exc_after(environ, start_response):
    # Headers already sent: start_response(exc_info) must re-raise.
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial-" * 100
    try:
        raise RuntimeError("pyhost-test-exc-after")
    except RuntimeError:
        start_response("500 Too Late", [("Content-Type", "text/plain")], sys.exc_info())
    yield b"must-not-be-sent"


def custom_status(environ, start_response):
    start_response("299 Custom Reason", [("Content-Type", "text/plain")])
    return [b"custom"]


def multi_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                              ("X-Latin1", "caf\u00e9")])
    return [b"multi"]


def fixed_length(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11"),
                              ("X-Method-Seen", environ["REQUEST_METHOD"])])
    return [b"hello", b" world"]


def file_wrapper(environ, start_response):
    size = os.path.getsize(DATA_FILE)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](open(DATA_FILE, "rb"), 32768)


def file_wrapper_nolength(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(DATA_FILE, "rb"))


def file_wrapper_bytesio(environ, start_response):
    # Not a real file: must still work, by iterating read(blksize).
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 1000), 4096)


class _Closing:
    """An iterable whose close() appends one line to a marker file."""

    def __init__(self, token, chunks, chunk_size, delay):
        self.path = os.path.join(STATE, "close-" + token)
        self.chunks = chunks
        self.chunk = b"x" * chunk_size
        self.delay = delay
        self.produced = 0

    def __iter__(self):
        for _ in range(self.chunks):
            self.produced += 1
            yield self.chunk
            if self.delay:
                time.sleep(self.delay)

    def close(self):
        with open(self.path, "a") as f:
            f.write("closed produced=%d\n" % self.produced)


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Closing(_token(environ), 3, 10, 0)


class _ClosingRaises(_Closing):
    def __iter__(self):
        self.produced += 1
        yield b"before the error " * 1000
        raise RuntimeError("pyhost-test-boom-closing")


def closing_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _ClosingRaises(_token(environ), 0, 0, 0)


def closing_slow(environ, start_response):
    # Up to 200 x 64 KiB over ~4 s: the client hangs up long before the end.
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _Closing(_token(environ), 200, 65536, 0.02)


def stream(environ, start_response):
    # Yields one chunk, then waits for the test to create a marker file: the
    # client can only create it if it received the first chunk already.
    token = _token(environ)
    marker = os.path.join(STATE, "stream-" + token)
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first-chunk\n"
    deadline = time.time() + 8
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.05)
    yield b"second-chunk\n" if os.path.exists(marker) else b"timed-out\n"


def stream_write(environ, start_response):
    # Same, through the write() callable.
    token = _token(environ)
    marker = os.path.join(STATE, "stream-" + token)
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first-chunk\n")
    deadline = time.time() + 8
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.05)
    return [b"second-chunk\n" if os.path.exists(marker) else b"timed-out\n"]


def big(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [bytes([i % 256]) * 65536 for i in range(32)]


def cl_short(environ, start_response):
    # Promises 100 bytes, delivers 5: the client must not wait forever.
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"short"]


def cl_long(environ, start_response):
    # Promises 5 bytes, offers 11: no more than 5 may go on the wire, or a
    # keep-alive client reads garbage as its next response.
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello", b" world"]


def empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Empty", "yes")])
    return []


def no_content(environ, start_response):
    start_response("204 No Content", [("X-No-Content", "yes")])
    return []


def echo_while_streaming(environ, start_response):
    # Reads the request body only after start_response, from the generator.
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    inp = environ["wsgi.input"]
    for _ in range(100000):
        b = inp.read(4096)
        if not b:
            break
        yield b


def long_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Long", "v" * 6000),
                              ("X-CamelCase-Name", "kept")])
    return [b"long header"]


CASES = {
    "/cl-short": cl_short,
    "/cl-long": cl_long,
    "/empty": empty,
    "/no-content": no_content,
    "/echo-streaming": echo_while_streaming,
    "/long-header": long_header,
    "/write": write_callable,
    "/write-only": write_only,
    "/empty-first": empty_first,
    "/exc-before": exc_before,
    "/exc-after": exc_after,
    "/custom-status": custom_status,
    "/multi-headers": multi_headers,
    "/fixed-length": fixed_length,
    "/file-wrapper": file_wrapper,
    "/file-wrapper-nolength": file_wrapper_nolength,
    "/file-wrapper-bytesio": file_wrapper_bytesio,
    "/closing": closing,
    "/closing-slow": closing_slow,
    "/closing-raises": closing_raises,
    "/stream": stream,
    "/stream-write": stream_write,
    "/big": big,
}


def application(environ, start_response):
    case = CASES.get(environ.get("PATH_INFO", ""))
    if case is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such case"]
    return case(environ, start_response)
