# Reads the whole request body and answers with its length and digest: the
# malformed-request corpus needs an app that consumes whatever framing the
# client claims, and a request that reaches it with a body it could read.
import hashlib


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    out = b"%d %s\n" % (len(body), hashlib.sha256(body).hexdigest()[:16].encode())
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(out)))])
    return [out]
