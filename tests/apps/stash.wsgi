# Keeps request-bound objects (wsgi.input, wsgi.errors, start_response, write,
# file_wrapper) past the end of their request, then uses them from a later
# one: that must raise or do nothing, never take the child down.
import json
import os

STASH = {}


def stash(environ, start_response):
    # ?only=NAME keeps just that one (pyhost reuses a request's objects
    # for a later request unless something kept any of them).
    only = environ.get("QUERY_STRING", "").partition("only=")[2]
    write = start_response("200 OK", [("Content-Type", "application/json")])
    STASH.clear()
    STASH.update(input=environ["wsgi.input"], errors=environ["wsgi.errors"],
                 start_response=start_response, write=write,
                 file_wrapper=environ["wsgi.file_wrapper"], environ=environ)
    if only:
        for k in list(STASH):
            if k != only:
                del STASH[k]
    return [json.dumps({"pid": os.getpid(), "stashed": True}).encode()]


LAST = {}


def ids(environ, start_response):
    """The identities of this request's objects, and of the previous ones."""
    write = start_response("200 OK", [("Content-Type", "application/json")])
    now = {"start_response": id(start_response), "write": id(write),
           "input": id(environ["wsgi.input"]),
           "errors": id(environ["wsgi.errors"])}
    out = {"pid": os.getpid(), "now": now, "before": dict(LAST)}
    LAST.clear()
    LAST.update(now)
    return [json.dumps(out).encode()]


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
        if "input" in s:
            out["input.read"] = _try(lambda: s["input"].read())
            out["input.readline"] = _try(lambda: s["input"].readline())
        if "errors" in s:
            out["errors.write"] = _try(lambda: s["errors"].write("pyhost-test-stale-errors\n"))
        if "write" in s:
            out["write"] = _try(lambda: s["write"](b"stale write"))
        if "start_response" in s:
            out["start_response"] = _try(lambda: s["start_response"]("200 OK", []))
        if "file_wrapper" in s:
            out["file_wrapper"] = _try(
                lambda: s["file_wrapper"](open(os.devnull, "rb")))
        if "environ" in s:
            out["environ"] = _try(lambda: len(s["environ"]))
            out["environ.input.read"] = _try(lambda: s["environ"]["wsgi.input"].read())
            out["environ.errors.write"] = _try(
                lambda: s["environ"]["wsgi.errors"].write("pyhost-test-stale-errors\n"))
        # The live objects of this request are never the kept ones.
        live = {"input": environ["wsgi.input"], "errors": environ["wsgi.errors"],
                "start_response": start_response}
        for k, v in live.items():
            if k in s:
                out["same." + k] = v is s[k]
        if "write" in s:  # the object both are bound to
            out["same.write"] = (getattr(start_response, "__self__", None)
                                 is getattr(s["write"], "__self__", object()))
        if "environ" in s:
            out["same.environ.input"] = environ["wsgi.input"] is s["environ"]["wsgi.input"]
        STASH.clear()
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/stash":
        return stash(environ, start_response)
    if environ.get("PATH_INFO") == "/ids":
        return ids(environ, start_response)
    return use(environ, start_response)
