# conf/virtual-hosts.conf: which site, process and interpreter answered.
import json
import os


def interpreter():
    try:
        import _xxsubinterpreters as si
        return int(si.get_current()), int(si.get_current()) == int(si.get_main())
    except Exception:
        return None, None


def application(environ, start_response):
    interp_id, main = interpreter()
    body = json.dumps({"site": os.path.basename(os.path.dirname(environ["SCRIPT_FILENAME"])), "pid": os.getpid(),
                       "interp_id": interp_id, "main": main}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
