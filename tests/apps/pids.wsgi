# Where Python runs: the serving process and its parent.
import json
import os


def application(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "ppid": os.getppid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
