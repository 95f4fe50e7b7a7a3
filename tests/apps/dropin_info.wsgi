# Reports what the mod_wsgi drop-in tests look at: Python's flags, the
# hash of a fixed string, warnings filters, the switch interval, and
# whether sys.stdout / sys.stdin may be used.
import json
import sys
import warnings


def _try(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return "OSError: %s" % e


def application(environ, start_response):
    out = {
        "optimize": sys.flags.optimize,
        "dont_write_bytecode": sys.dont_write_bytecode,
        "hash": hash("pyhost-dropin"),
        "warnoptions": list(sys.warnoptions),
        "switchinterval": sys.getswitchinterval(),
        "stdout": _try(lambda: print("dropin stdout", flush=True)),
        "stdin": _try(lambda: sys.stdin.read(0)),
        "process_group": environ.get("mod_wsgi.process_group"),
    }
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
