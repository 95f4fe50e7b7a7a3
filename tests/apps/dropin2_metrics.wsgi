# mod_wsgi.process_metrics() / server_metrics() as an app sees them.
import json
import os

import mod_wsgi


def application(environ, start_response):
    before = mod_wsgi.process_metrics()
    mod_wsgi.start_recording_metrics()
    body = json.dumps({
        "pid": os.getpid(),
        "before_recording": before,
        "process": mod_wsgi.process_metrics(),
        "server": mod_wsgi.server_metrics(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
