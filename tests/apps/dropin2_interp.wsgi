# What <WSGIInterpreterOptions> set in this interpreter.
import json
import signal
import sys

import mod_wsgi


def _handler(signum, frame):
    pass


def application(environ, start_response):
    try:
        print("dropin2 stdout", flush=True)
        stdout = "ok"
    except OSError:
        stdout = "restricted"
    try:
        returned = signal.signal(signal.SIGUSR2, _handler) is _handler
        if signal.getsignal(signal.SIGUSR2) is _handler:
            signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    except ValueError:   # not the main thread: Python's own refusal
        returned = False
    body = json.dumps({
        "group": [mod_wsgi.process_group, mod_wsgi.application_group],
        "switchinterval": sys.getswitchinterval(),
        "stdout": stdout,
        "signal_ignored": returned,
        "pylib1": any(p.endswith("/pylib1") for p in sys.path),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
