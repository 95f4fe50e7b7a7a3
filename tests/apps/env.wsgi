# Dumps the WSGI environ as JSON: the environ tests, the pass-authorization
# tests and the root-mount virtual host all read it.
import json


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return "<%s>" % type(value).__name__


def application(environ, start_response):
    out = {k: _plain(v) for k, v in environ.items()}
    out["_types"] = {k: type(v).__name__ for k, v in environ.items()}
    inp = environ.get("wsgi.input")
    out["_input_methods"] = sorted(m for m in ("read", "readline", "readlines", "__iter__")
                                   if hasattr(inp, m))
    err = environ.get("wsgi.errors")
    out["_errors_methods"] = sorted(m for m in ("write", "writelines", "flush")
                                    if hasattr(err, m))
    out["_file_wrapper_callable"] = callable(environ.get("wsgi.file_wrapper"))
    body = json.dumps(out, sort_keys=True).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
