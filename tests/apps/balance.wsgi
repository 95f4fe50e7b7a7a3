# Load spreading over a daemon group: each response names the process that
# served it. Preloaded with WSGIImportScript, so a process leaves its start
# time (when it became ready to serve) in the state dir before any request.
import os
import sys
import time

# The first load in this process wins (the preload; the alias may load the
# script again); the file is rewritten, in case an earlier test's process
# had the same pid.
READY = sys.__dict__.setdefault("pyhost_balance_ready", time.time())
_mark = os.path.join("@STATE_DIR@", "balance-ready-%d" % os.getpid())
with open(_mark + ".tmp", "w") as f:
    f.write("%.6f\n" % READY)
os.rename(_mark + ".tmp", _mark)


def _spin(seconds):
    # CPU time of this thread, so the work is the same however the GIL is
    # shared with the process's other threads.
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/sleep":
        time.sleep(0.02)
    elif path == "/cpu":
        _spin(0.002)
    elif path == "/long":
        time.sleep(3)
    body = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
