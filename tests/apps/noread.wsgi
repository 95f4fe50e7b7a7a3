# Never touches wsgi.input: an `Expect: 100-continue` request must get its
# final response without a 100 first.
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"did not read"]
