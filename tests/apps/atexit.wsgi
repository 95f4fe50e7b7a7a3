# Proves that Python was finalized when the process stopped: the first
# request in each interpreter registers an atexit handler (per interpreter:
# it runs when that interpreter ends, Py_EndInterpreter or Py_FinalizeEx)
# that leaves a marker file named after the token, the group and the pid.
import atexit
import json
import os

STATE = "@STATE_DIR@"
_registered = set()


def _mark(name):
    with open(os.path.join(STATE, name), "w") as f:
        f.write("finalized\n")


def application(environ, start_response):
    token = environ.get("QUERY_STRING", "")
    if not token.isalnum():
        raise ValueError("bad token %r" % token)
    group = environ["mod_wsgi.application_group"] or "GLOBAL"
    name = "atexit-%s-%s-%d" % (token, group, os.getpid())
    if name not in _registered:
        _registered.add(name)
        atexit.register(_mark, name)
    body = json.dumps({"pid": os.getpid(), "group": group, "marker": name}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
