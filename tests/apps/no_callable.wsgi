# Defines no `application`: the entry must say what is missing.
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wrong name"]


application_not_callable = 42
