# Imports modules that are only reachable through WSGIPythonPath (pylib1,
# pylib2) and through a .pth file in pylib2 (pylib3: site.addsitedir semantics).
import json


def application(environ, start_response):
    found = {}
    for name in ("pyhost_test_mod1", "pyhost_test_mod2", "pyhost_test_mod3"):
        try:
            found[name] = __import__(name).VALUE
        except ImportError as e:
            found[name] = "ImportError: %s" % e
    body = json.dumps(found).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
