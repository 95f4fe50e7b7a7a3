# WSGIPassApacheRequest and switch-interval= as the app sees them.
import json
import sys


def application(environ, start_response):
    cap = environ.get("apache.request_rec")
    body = json.dumps({
        "request_rec": type(cap).__name__ if cap is not None else None,
        "switchinterval": sys.getswitchinterval(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
