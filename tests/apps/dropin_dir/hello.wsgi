# One of several scripts in a directory mounted with
# WSGIScriptAlias /wsgi/ .../dropin_dir/: says which file ran and how the
# URL was split.
import json


def application(environ, start_response):
    body = json.dumps({
        "file": __file__,
        "SCRIPT_NAME": environ["SCRIPT_NAME"],
        "PATH_INFO": environ["PATH_INFO"],
        "SCRIPT_FILENAME": environ.get("SCRIPT_FILENAME"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
