# Reads wsgi.input in the style QUERY_STRING names and always answers 200
# with what happened, as frameworks do when a body read fails: the tests
# check what a client's false or broken body claims do to the app and to
# the connection, not the app's error page.
import json
import tracemalloc


def _read(inp, how):
    if how == "read":
        return [inp.read()]
    if how == "readn":
        return [inp.read(10)]
    if how == "readn_big":
        return [inp.read(1 << 40)]
    if how == "readline":
        return [inp.readline()]
    if how == "iter":
        return [next(iter(inp))]
    raise ValueError("unknown mode %r" % how)


def application(environ, start_response):
    got, error = [], None
    how = environ.get("QUERY_STRING") or "read"
    # What the read allocates at its peak (wsgi.input's buffers are
    # Python's memory): a buffer sized from a claim shows here even when
    # its pages are never touched. Requests to this app come one at a time.
    tracemalloc.start()
    try:
        got = _read(environ["wsgi.input"], how)
    except Exception as e:  # the point: the app copes with the failure
        error = "%s: %s" % (type(e).__name__, e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    body = json.dumps({
        "got": [g.decode("latin-1") for g in got],
        "error": error,
        "content_length": environ.get("CONTENT_LENGTH"),
        "read_peak_bytes": peak,
    }).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
