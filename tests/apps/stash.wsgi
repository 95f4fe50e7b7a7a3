# Keeps request-bound objects (wsgi.input, wsgi.errors, start_response, write,
# file_wrapper) past the end of their request, then uses them from a later
# one: that must raise or do nothing, never take the child down.
import json
import os

STASH = {}


def stash(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "application/json")])
    STASH.clear()
    STASH.update(input=environ["wsgi.input"], errors=environ["wsgi.errors"],
                 start_response=start_response, write=write,
                 file_wrapper=environ["wsgi.file_wrapper"], environ=environ)
    return [json.dumps({"pid": os.getpid(), "stashed": True}).encode()]


def _try(fn):
    try:
        r = fn()
        return "ok:%s" % type(r).__name__
    except Exception as e:
        return "raised:%s" % type(e).__name__


def use(environ, start_response):
    out = {"pid": os.getpid(), "stashed": bool(STASH)}
    if STASH:
        s = STASH
        out["input.read"] = _try(lambda: s["input"].read())
        out["input.readline"] = _try(lambda: s["input"].readline())
        out["errors.write"] = _try(lambda: s["errors"].write("pyhost-test-stale-errors\n"))
        out["write"] = _try(lambda: s["write"](b"stale write"))
        out["start_response"] = _try(lambda: s["start_response"]("200 OK", []))
        out["file_wrapper"] = _try(
            lambda: s["file_wrapper"](open(os.devnull, "rb")))
        out["environ"] = _try(lambda: len(s["environ"]))
        STASH.clear()
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/stash":
        return stash(environ, start_response)
    return use(environ, start_response)
