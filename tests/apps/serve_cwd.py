# `pyhost serve` working directory: answers os.getcwd() of the process
# running the app.
import json
import os


def application(environ, start_response):
    body = json.dumps({"cwd": os.getcwd()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
