# The one WSGI app every Python setup serves (pyhost, mod_wsgi, gunicorn,
# uWSGI), so that only the server differs. One route per workload; the 5 MB
# file is written next to this file by bench/run.py.
import os

HERE = os.path.dirname(os.path.abspath(__file__))
BIG_FILE = os.path.join(HERE, "5mb.bin")

HELLO = b"Hello world!"
BODY_64K = b"x" * 65536
CHUNK = b"y" * 1024
STREAM_CHUNKS = 100

try:
    import flask
except ImportError:  # the Flask workload then answers 500 and is reported
    flask = None

if flask is not None:
    flask_app = flask.Flask(__name__)

    @flask_app.route("/flask")
    def flask_hello():
        return "Hello world!"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def body_64k(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(BODY_64K)))])
    return [BODY_64K]


def big_file(environ, start_response):
    f = open(BIG_FILE, "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(os.fstat(f.fileno()).st_size))])
    return environ["wsgi.file_wrapper"](f, 65536)


def echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def stream(environ, start_response):
    # No Content-Length: every chunk is its own write to the client.
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(STREAM_CHUNKS):
        yield CHUNK


ROUTES = {"/hello": hello, "/64k": body_64k, "/file": big_file,
          "/echo": echo, "/stream": stream}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    route = ROUTES.get(path)
    if route is not None:
        return route(environ, start_response)
    if path == "/flask" and flask is not None:
        return flask_app(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"),
                                     ("Content-Length", "9")])
    return [b"not found"]
