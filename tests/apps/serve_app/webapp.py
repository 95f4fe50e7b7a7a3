# `pyhost serve` scenarios: served as a script (webapp.py) or as
# webapp:application; the message comes from an imported module so that
# --reload can be tested by editing a file that is not the script.
import json

import webhelper


def application(environ, start_response):
    body = json.dumps({
        "message": webhelper.MESSAGE,
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "https": environ.get("HTTPS") or environ.get("wsgi.url_scheme"),
        "protocol": environ.get("SERVER_PROTOCOL"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
