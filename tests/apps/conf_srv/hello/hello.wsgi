# conf/ snippets' /srv/hello: reports the scheme so TLS can be checked.
def application(environ, start_response):
    body = ("hello from conf/ scheme=%s" % environ["wsgi.url_scheme"]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
