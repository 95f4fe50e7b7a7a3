# Reports where WSGIDispatchScript sent the request.
import json
import os

import mod_wsgi


def _report(name, environ, start_response):
    body = json.dumps({
        "callable": name,
        "pid": os.getpid(),
        "process_group": environ.get("mod_wsgi.process_group"),
        "application_group": environ.get("mod_wsgi.application_group"),
        "interpreter": mod_wsgi.application_group,
        "daemon": mod_wsgi.process_group,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    return _report("application", environ, start_response)


def other(environ, start_response):
    return _report("other", environ, start_response)
