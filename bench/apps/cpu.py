# A CPU-bound WSGI app for bench/parallel.py: pure-Python arithmetic that
# holds the GIL (if there is one) for the whole request, a few ms each.
import sys

LOOPS = 60_000


def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def application(environ, start_response):
    body = ("%d %s\n" % (work(LOOPS), getattr(sys, "_is_gil_enabled", lambda: True)())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
