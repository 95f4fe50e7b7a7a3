# Reached through WSGIScriptAliasMatch with a backreference in the path.
import json


def application(environ, start_response):
    body = json.dumps({"script": "one", "SCRIPT_NAME": environ.get("SCRIPT_NAME"),
                       "PATH_INFO": environ.get("PATH_INFO")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
