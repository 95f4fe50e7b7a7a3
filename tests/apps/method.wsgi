# Reports the REQUEST_METHOD the app saw, in a header (HEAD has no body).
def application(environ, start_response):
    body = b"method=" + environ["REQUEST_METHOD"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body))),
                              ("X-Method-Seen", environ["REQUEST_METHOD"])])
    return [body]
