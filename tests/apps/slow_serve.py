# `pyhost serve` stop scenarios: /?sleep=S&token=T writes a "started" marker
# into the state directory, sleeps S seconds, then answers; the first request
# of a process registers an atexit handler that leaves a "finalized" marker,
# so a test can tell a graceful stop (requests finish, Python ends normally)
# from a cut one.
import atexit
import os
import time
from urllib.parse import parse_qs

STATE = "@STATE_DIR@"
_registered = []


def _touch(name):
    with open(os.path.join(STATE, name), "w") as f:
        f.write("%d\n" % os.getpid())


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    token = q.get("token", "")
    if not token.isalnum():
        raise ValueError("bad token %r" % token)
    if not _registered:
        _registered.append(token)
        atexit.register(_touch, "finalized-%s-%d" % (token, os.getpid()))
    _touch("started-%s" % token)
    seconds = float(q.get("sleep", "0"))
    time.sleep(seconds)
    body = ("slept %.1f\n" % seconds).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
