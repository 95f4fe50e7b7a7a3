"""wsgi.file_wrapper in a daemon process (tests/test_daemon_sendfile.py):
a regular file's descriptor crosses the relay; anything else is read and
relayed. Query: path (the file), skip (seek there first), cl (a
Content-Length header), pre (bytes written with write() first)."""
import io
import os
import threading
from urllib.parse import parse_qs


def _query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def regular(environ, start_response):
    q = _query(environ)
    f = open(q["path"], "rb")
    if "skip" in q:
        f.seek(int(q["skip"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    write = start_response("200 OK", headers)
    if "pre" in q:
        write(q["pre"].encode())
    return environ["wsgi.file_wrapper"](f, 65536)


def _pattern(n):
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


def pipe(environ, start_response):
    # A pipe has a descriptor but is not a regular file: read and relayed.
    n = int(_query(environ).get("n", "100000"))
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb") as out:
            out.write(_pattern(n))
    threading.Thread(target=feed, daemon=True).start()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](os.fdopen(r, "rb"), 8192)


def bytesio(environ, start_response):
    # No descriptor at all.
    n = int(_query(environ).get("n", "100000"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(_pattern(n)), 8192)


def pid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


_saved_limit = []


def nofile(environ, start_response):
    # Mounted embedded: runs in the Apache child that serves this
    # keep-alive connection. "exhaust" lowers the child's own soft
    # RLIMIT_NOFILE to its lowest free descriptor, so that the next one
    # it receives cannot be installed; "restore" puts it back.
    import resource
    what = _query(environ)["do"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if what == "exhaust":
        probe = os.open("/dev/null", os.O_RDONLY)
        os.close(probe)
        _saved_limit.append(soft)
        resource.setrlimit(resource.RLIMIT_NOFILE, (probe, hard))
        out = str(probe)
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (_saved_limit.pop() if _saved_limit else hard, hard))
        out = "restored"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-Pid", str(os.getpid()))])
    return [out.encode()]


ROUTES = {"/regular": regular, "/pipe": pipe, "/bytesio": bytesio, "/pid": pid,
          "/nofile": nofile}


def application(environ, start_response):
    return ROUTES[environ.get("PATH_INFO", "")](environ, start_response)
