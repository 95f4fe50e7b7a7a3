# Served through the wsgi-script handler (SetHandler / AddHandler) in handler/.
import json


def application(environ, start_response):
    body = json.dumps({"dir": "handler", "SCRIPT_NAME": environ.get("SCRIPT_NAME"),
                       "PATH_INFO": environ.get("PATH_INFO")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
