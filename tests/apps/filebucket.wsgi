# wsgi.file_wrapper around a file whose read() fails: only a server that
# hands the descriptor to Apache (a file bucket) can send this body.
import json
import os


class NoRead:
    def __init__(self, f):
        self.f = f

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def read(self, *args):
        raise RuntimeError("read() must not be called: Apache sends the file")

    def close(self):
        self.f.close()


def application(environ, start_response):
    f = open("@DATA_FILE@", "rb")
    skip = int(environ.get("QUERY_STRING") or 0)
    f.seek(skip)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](NoRead(f))
