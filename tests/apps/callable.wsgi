# Two callables in one script: WSGICallableObject / callable-object= pick one.
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"callable=application"]


def other(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"callable=other"]
