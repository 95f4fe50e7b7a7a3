# Reads the body and answers 200 whatever happens: a body Apache refuses
# (LimitRequestBody) must still be Apache's answer alone, logged as such.
def application(environ, start_response):
    try:
        n = len(environ["wsgi.input"].read())
    except OSError as e:
        n = "refused: %s" % e
    body = ("read %s" % n).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
