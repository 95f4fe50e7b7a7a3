# wsgi.input in every reading style; QUERY_STRING picks the style. The body
# comes back as JSON so the tests can compare it byte for byte (latin-1).
import json


def _read_all(inp, how):
    if how == "read":
        return [inp.read()]
    if how == "readn":
        out = []
        for _ in range(1_000_000):
            b = inp.read(7)
            if not b:
                break
            out.append(b)
        return out
    if how == "readbig":
        out = []
        for _ in range(100_000):
            b = inp.read(65536)
            if not b:
                break
            out.append(b)
        return out
    if how == "readline":
        out = []
        for _ in range(1_000_000):
            b = inp.readline()
            if not b:
                break
            out.append(b)
        return out
    if how == "readline5":
        out = []
        for _ in range(1_000_000):
            b = inp.readline(5)
            if not b:
                break
            out.append(b)
        return out
    if how == "readlines":
        return inp.readlines()
    if how == "readlines_hint":
        first = inp.readlines(10)
        return first + [b"|REST|"] + [inp.read()]
    if how == "iter":
        return list(inp)
    if how == "mixed":
        return [inp.read(3), inp.readline(), inp.read()]
    if how == "read_twice":
        return [inp.read(), inp.read(), inp.read(10)]
    if how == "read_minus1":
        return [inp.read(-1)]
    if how == "readline_minus1":
        return [inp.readline(-1), inp.read()]
    if how == "read_zero":
        return [inp.read(0), inp.read()]
    if how == "read_huge":
        # A size far beyond the body must not be allocated up front.
        return [inp.read(1 << 40)]
    if how == "readline_huge":
        return [inp.readline(1 << 40), inp.read()]
    if how == "none":
        return []
    raise ValueError("unknown mode %r" % how)


def application(environ, start_response):
    how = environ.get("QUERY_STRING") or "read"
    chunks = _read_all(environ["wsgi.input"], how)
    out = {
        "chunks": [c.decode("latin-1") for c in chunks],
        "types": sorted({type(c).__name__ for c in chunks}),
        "input_terminated": environ.get("wsgi.input_terminated"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
    }
    body = json.dumps(out).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
