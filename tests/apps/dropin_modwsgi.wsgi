# What an app that checks for mod_wsgi sees: the importable module, and
# the environ keys it reads.
import json

import mod_wsgi


def application(environ, start_response):
    if environ.get("QUERY_STRING") == "fail":
        raise ValueError("request id <%s>" % environ["mod_wsgi.request_id"])
    body = json.dumps({
        "module": {k: getattr(mod_wsgi, k) for k in (
            "process_group", "application_group", "maximum_processes",
            "threads_per_process", "version")},
        "environ": {k: environ.get(k) for k in (
            "mod_wsgi.process_group", "mod_wsgi.application_group",
            "mod_wsgi.callable_object", "mod_wsgi.script_reloading",
            "wsgi.url_scheme", "HTTPS", "mod_wsgi.request_handler",
            "mod_wsgi.request_id", "mod_wsgi.version")},
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
