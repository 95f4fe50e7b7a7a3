# A typical mod_wsgi-era script: imports from WSGIPythonPath, needs the
# Authorization header and reads a chunked upload to its end.
import json

import legacyhelper


def application(environ, start_response):
    data = environ["wsgi.input"].read()
    body = json.dumps({
        "helper": legacyhelper.NAME,
        "auth": environ.get("HTTP_AUTHORIZATION"),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "body_len": len(data),
        "body_head": data[:16].decode("latin-1"),
        "terminated": environ.get("wsgi.input_terminated"),
    }, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
