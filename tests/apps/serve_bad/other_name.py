# Defines its WSGI callable as `app` (and a factory), not `application`:
# pyhost serve names what it found and the option to pick one.
import json


def make_app():
    return app


def app(environ, start_response):
    body = json.dumps({"served_by": "app"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
