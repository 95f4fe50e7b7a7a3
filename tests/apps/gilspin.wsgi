# Shows whether two requests run Python at the same moment, with no clock:
# each request bumps its own counter in a shared mmap and watches the other's
# counter, in a loop of plain bytecode that never releases the GIL (mmap item
# access does not; the switch interval is set huge when the script loads, so
# a waiting thread never asks for the GIL either). Under one shared GIL the
# other counter cannot move while this loop runs; with a GIL per interpreter
# (or none) it does. The loop is bounded by an iteration count.
#   GET ?name=FILE&me=0|1[&limit=N]   FILE: a 16-byte file in the state dir
import json
import mmap
import os
import sys
import time

STATE = "@STATE_DIR@"
SEEN_ENOUGH = 1000
LIMIT = 20_000_000

sys.setswitchinterval(1000.0)


def spin(m, me, other, limit):
    # m[me]: my counter; m[2 + me]: set once I have seen enough, after
    # which I keep counting until the other has seen enough too.
    seen = 0
    last = m[other]
    i = 0
    while i < limit and (seen < SEEN_ENOUGH or not m[2 + other]):
        m[me] = (m[me] + 1) & 255
        cur = m[other]
        if cur != last:
            seen += 1
            last = cur
            if seen == SEEN_ENOUGH:
                m[2 + me] = 1
        i += 1
    return seen, i


def meet(m, me, other):
    # Both requests start spinning together: a late start of one (a busy
    # machine) would otherwise let the other finish its loop alone. Sleeping
    # releases the GIL, so this works under a shared GIL too. Bounded: after
    # ~10 s the spin runs anyway (and the test sees too little).
    m[4 + me] = 1
    for _ in range(10000):
        if m[4 + other]:
            return
        time.sleep(0.001)


def application(environ, start_response):
    q = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    if "warm" in q:  # load the script (and set the interval) only
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"warm"]
    me = int(q["me"])
    path = os.path.join(STATE, os.path.basename(q["name"]))
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 16)
    try:
        meet(m, me, 1 - me)
        seen, iterations = spin(m, me, 1 - me, int(q.get("limit", LIMIT)))
    finally:
        m.close()
    try:
        gil = sys._is_gil_enabled()
    except AttributeError:
        gil = True
    body = json.dumps({"seen": seen, "iterations": iterations,
                       "gil_enabled": gil, "pid": os.getpid(),
                       "token": getattr(sys, "pyhost_test_token", None)}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
