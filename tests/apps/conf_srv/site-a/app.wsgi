# conf/virtual-hosts.conf: which site, process and interpreter answered.
import json
import os


def interpreter():
    try:
        try:
            import _interpreters as si  # 3.13+: ids come as (id, whence)
        except ImportError:
            import _xxsubinterpreters as si
        current, main = si.get_current(), si.get_main()
        if isinstance(current, tuple):
            current, main = current[0], main[0]
        return int(current), int(current) == int(main)
    except Exception:
        return None, None


def application(environ, start_response):
    interp_id, main = interpreter()
    body = json.dumps({"site": os.path.basename(os.path.dirname(environ["SCRIPT_FILENAME"])), "pid": os.getpid(),
                       "interp_id": interp_id, "main": main}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
