# WSGIDispatchScript, after mod_wsgi's documented example: the URL picks
# the daemon process group; a header picks the application group; a path
# picks the callable.
def process_group(environ):
    path = environ.get("REQUEST_URI", "")
    if path.startswith("/d/admin/"):
        return "admin"
    if path.startswith("/d/embedded/"):
        return "%{GLOBAL}"
    if path.startswith("/d/raise/"):
        raise RuntimeError("dispatch refused " + path)
    if path.startswith("/d/int/"):
        return 42
    return "web"


def application_group(environ):
    return environ.get("HTTP_X_APP_GROUP")     # None: keep the configured one


def callable_object(environ):
    if environ.get("PATH_INFO", "").endswith("/other"):
        return "other"
    return None
