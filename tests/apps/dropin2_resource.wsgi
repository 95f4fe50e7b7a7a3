# WSGIHandlerScript: handle_request serves whatever file the handler was
# chosen for (SCRIPT_FILENAME), as mod_wsgi's documented example.
import json
import os

import mod_wsgi


def handle_request(environ, start_response):
    path = environ["SCRIPT_FILENAME"]
    try:
        with open(path) as f:
            text = f.read()
        status = "200 OK"
    except OSError:
        text, status = None, "404 Not Found"
    body = json.dumps({
        "file": os.path.basename(path),
        "text": text,
        "daemon": mod_wsgi.process_group,
        "interpreter": mod_wsgi.application_group,
        "auth": environ.get("HTTP_AUTHORIZATION"),
        "pid": os.getpid(),
    }).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):   # must not be the one called
    start_response("500 Wrong Callable", [("Content-Type", "text/plain")])
    return [b"application() called instead of handle_request()"]
