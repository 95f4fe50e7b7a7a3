# A process that cannot finish stopping: the first request registers an
# atexit handler that sleeps (bounded) when Python is finalized, as an app
# whose shutdown hook waits on something that never answers.
import atexit
import json
import os
import time

_registered = []


def _hang():
    time.sleep(120)


def application(environ, start_response):
    if not _registered:
        _registered.append(True)
        atexit.register(_hang)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"pid": os.getpid()}).encode()]
