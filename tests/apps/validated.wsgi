# A small app behind wsgiref.validate.validator, with the validator's warnings
# turned into errors: any PEP 3333 slip by the server fails the request.
import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def inner(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/get":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"validated get"]
    if path == "/post":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        inp = environ["wsgi.input"]
        first = inp.readline()
        rest = inp.read(n - len(first))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"got:" + first + rest]
    if path == "/stream":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written;")

        def gen():
            for i in range(5):
                yield ("chunk%d;" % i).encode()
        return gen()
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open("@DATA_FILE@", "rb"), 8192)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


application = validator(inner)
