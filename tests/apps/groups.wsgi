# Reports which interpreter runs it: a random token stored on the interpreter's
# own sys module (so two scripts in one group see the same token, two groups
# see different ones) and whether this is the main interpreter.
import json
import os
import sys


def interp_info():
    token = getattr(sys, "pyhost_test_token", None)
    if token is None:
        token = os.urandom(8).hex()
        sys.pyhost_test_token = token
    info = {"pid": os.getpid(), "token": token, "main": None, "interp_id": None}
    try:
        try:
            import _interpreters as si  # 3.13+: get_current() is (id, whence)
        except ImportError:
            import _xxsubinterpreters as si  # 3.12 and older: an id
        current, main = si.get_current(), si.get_main()
        if isinstance(current, tuple):
            current, main = current[0], main[0]
        info["interp_id"] = int(current)
        info["main"] = int(current) == int(main)
    except Exception as e:  # not importable in this interpreter: unknown
        info["main_error"] = repr(e)
    return info


def application(environ, start_response):
    info = interp_info()
    info["script"] = "groups"
    body = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
