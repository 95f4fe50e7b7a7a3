# Says whether WSGIImportScript already ran in this interpreter.
import json
import os
import sys
import time


def application(environ, start_response):
    mark = getattr(sys, "pyhost_test_preloaded", None)
    body = json.dumps({"pid": os.getpid(), "preloaded": mark, "now": time.time()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
