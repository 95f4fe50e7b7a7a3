# Copied into the state dir by the harness; the reloading tests rewrite VERSION.
import os

VERSION = "v1"


def application(environ, start_response):
    body = ("%s pid=%d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
