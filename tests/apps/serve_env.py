# `pyhost serve` options, seen from inside the app: its environment
# variables, where it is mounted, who the client is, TLS client certificate
# data, its pid; POST answers with the body's length; /big is compressible.
import json
import os


def application(environ, start_response):
    if environ["PATH_INFO"] == "/big":
        body = b"pyhost compresses text. " * 4000
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    length = 0
    if environ["REQUEST_METHOD"] == "POST":
        length = len(environ["wsgi.input"].read())
    body = json.dumps({
        "env": {k: v for k, v in os.environ.items() if k.startswith("PYHOST_TEST_APP_")},
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "scheme": environ.get("wsgi.url_scheme"),
        "host": environ.get("HTTP_HOST"),
        "port": environ.get("SERVER_PORT"),
        "forwarded": sorted(k for k in environ if k.startswith("HTTP_X_FORWARDED")),
        "client_dn": environ.get("SSL_CLIENT_S_DN"),
        "pid": os.getpid(),
        "length": length,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
