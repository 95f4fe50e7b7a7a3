# Full collections on demand (/collect?n=5), for the GC counters of the
# metrics; /pid says which process answered.
import gc
import os
import urllib.parse


def application(environ, start_response):
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    n = int(q.get("n", ["0"])[0])
    for _ in range(n):
        gc.collect()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % os.getpid()]
