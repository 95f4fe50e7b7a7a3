# Writes the token from QUERY_STRING to wsgi.errors (write, writelines, flush).
def application(environ, start_response):
    token = environ.get("QUERY_STRING", "")
    err = environ["wsgi.errors"]
    err.write("pyhost-test-errors-write %s\n" % token)
    err.writelines(["pyhost-test-errors-writelines %s\n" % token])
    err.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]
