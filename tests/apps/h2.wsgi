# The response cases tests/test_http2.py sends over HTTP/2 (h2 and h2c),
# one per PATH_INFO; mounted in embedded and in daemon mode. Every body is
# a pattern whose every 4 bytes differ, so a cut, a repeat or a reorder
# shows in the bytes, not only in the length.
import os
import resource

DATA_DIR = os.path.dirname("@DATA_FILE@")


def pattern(n, salt=0):
    """n bytes of big-endian 32-bit counters starting at salt."""
    words = (n + 3) // 4
    return b"".join(((salt + i) & 0xFFFFFFFF).to_bytes(4, "big")
                    for i in range(words))[:n]


def _file(environ, start_response, name):
    path = os.path.join(DATA_DIR, name)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(os.path.getsize(path)))])
    return environ["wsgi.file_wrapper"](open(path, "rb"), 32768)


def file_big(environ, start_response):
    return _file(environ, start_response, "h2-big.bin")


def file_small(environ, start_response):
    return _file(environ, start_response, "h2-small.bin")


def file_nolength(environ, start_response):
    # Apache sets Content-Length from the file bucket.
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(os.path.join(DATA_DIR, "h2-big.bin"), "rb"))


def file_after_write(environ, start_response):
    # write() sends the headers first; the file follows in a later pass.
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    write(b"head-")
    return environ["wsgi.file_wrapper"](open(os.path.join(DATA_DIR, "h2-small.bin"), "rb"))


def stream(environ, start_response):
    # A generator: each chunk is flushed on its own (no Content-Length).
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for i in range(64):
        yield pattern(16384, i * 4096)


def stream_length(environ, start_response):
    # The same with Content-Length: the headers go out with the first chunk.
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(16384 * 64))])
    for i in range(64):
        yield pattern(16384, i * 4096)


def big_list(environ, start_response):
    # A list of 2 MiB, no Content-Length: one brigade, Apache counts it.
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [pattern(65536, i * 16384) for i in range(32)]


def big_list_length(environ, start_response):
    body = [pattern(65536, i * 16384) for i in range(32)]
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(65536 * 32))])
    return body


def echo(environ, start_response):
    inp = environ["wsgi.input"]
    parts = []
    while True:
        b = inp.read(65536)
        if not b:
            break
        parts.append(b)
    body = b"".join(parts)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body))),
                              ("X-Method", environ["REQUEST_METHOD"])])
    return [body]


class _Starved:
    """The big file, while every descriptor the process may open is taken:
    the server cannot duplicate its descriptor. close() gives them back."""

    def __init__(self):
        self.f = open(os.path.join(DATA_DIR, "h2-big.bin"), "rb")
        self.limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.fillers = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.f.fileno() + 1, self.limits[1]))
        try:
            while len(self.fillers) < 10000:
                self.fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass  # EMFILE: every descriptor below the limit is in use

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def read(self, *args):
        return self.f.read(*args)

    def close(self):
        for fd in self.fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, self.limits)
        self.f.close()


def file_emfile(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](_Starved())


def multithread(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(environ["wsgi.multithread"]).encode()]


CASES = {
    "/file-emfile": file_emfile,
    "/file-big": file_big,
    "/file-small": file_small,
    "/file-nolength": file_nolength,
    "/file-after-write": file_after_write,
    "/stream": stream,
    "/stream-length": stream_length,
    "/list": big_list,
    "/list-length": big_list_length,
    "/echo": echo,
    "/multithread": multithread,
}


def application(environ, start_response):
    case = CASES.get(environ.get("PATH_INFO", ""))
    if case is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such case"]
    return case(environ, start_response)
