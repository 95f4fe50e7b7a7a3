"""The WSGI side of asgi_interp.py: the same per-interpreter token."""
import json
import os
import sys

TOKEN = sys.__dict__.setdefault("_pyhost_probe_token", os.urandom(8).hex())


def application(environ, start_response):
    body = json.dumps({"token": TOKEN, "pid": os.getpid(),
                       "modules": id(sys.modules),
                       "group": environ["mod_wsgi.application_group"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
