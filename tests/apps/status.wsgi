# Answers with the status in QUERY_STRING and its own body, for
# WSGIErrorOverride.
def application(environ, start_response):
    code = environ.get("QUERY_STRING") or "200"
    reasons = {"200": "OK", "404": "Not Found", "500": "Internal Server Error",
               "403": "Forbidden", "302": "Found"}
    start_response("%s %s" % (code, reasons.get(code, "Whatever")),
                   [("Content-Type", "text/plain"), ("X-From-App", "yes")])
    return [b"app-body-" + code.encode()]
