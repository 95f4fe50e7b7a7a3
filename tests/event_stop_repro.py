"""Reproduces mod_mpm_event's crash at an immediate stop with no pyhost
loaded: stock modules and a static file only (not a pytest module).

Each cycle starts Apache (event MPM, the harness's config, mod_status in the
place of the module under test), opens CONNECTIONS keep-alive connections
with one request each, closes them all at once and sends SIGTERM at once.
Children that crash leave "exit signal Segmentation fault" in the error log.

    python tests/event_stop_repro.py [--cycles 40] [--quiesce] [--cores DIR]

--quiesce waits as the harness's stop does (Apache.quiesce): no crash then.
--cores DIR: CoreDumpDirectory (writable by Apache's User; the kernel's
core_pattern and `ulimit -c` decide whether a core is written).

Why it crashes (Apache 2.4.6x source, server/mpm/event/event.c): at an
ungraceful stop the child's main thread runs signal_threads(ST_UNGRACEFUL)
-> close_worker_sockets(), which reads worker_sockets[i] and calls
apr_os_sock_get() on it. A worker sets worker_sockets[slot] before
process_socket() and clears it only after it returns; but process_socket()
can end the connection first (close_connection -> ap_queue_info_push_pool,
which destroys the pool once enough are recycled). Debian's APR allocator
unmaps a destroyed pool's memory, so the main thread reads unmapped memory:
SIGSEGV in apr_os_sock_get, with a worker in apr_allocator_destroy/munmap.
"""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

CONNECTIONS = 32


def cycle(ws, n, args):
    moddir = harness.apache_modules_dir()
    extra = "CoreDumpDirectory %s\n" % args.cores if args.cores else ""
    srv = harness.Apache(ws, "repro%d" % n, mpm="event", extra=extra,
                         python_directives=False,
                         module=("status_module", os.path.join(moddir, "mod_status.so")))
    srv.start()
    socks = []
    try:
        for _ in range(CONNECTIONS):
            s = srv.open_socket()
            socks.append(s)
            s.sendall(b"GET /ping.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks:
            data, found = harness.read_until(s, b"pong\n", timeout=10)
            if not found:
                raise RuntimeError("no answer: %r" % data[:200])
        time.sleep(0.05)  # every connection idle in keep-alive
    finally:
        for s in socks:
            s.close()
    rc = srv.stop(signal.SIGTERM, quiesce=args.quiesce)
    return rc, [l for l in srv.error_log().splitlines() if harness.CRASH_RE.search(l)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=40)
    ap.add_argument("--quiesce", action="store_true")
    ap.add_argument("--cores")
    args = ap.parse_args()
    ws = harness.Workspace()
    crashed = 0
    t0 = time.time()
    try:
        for n in range(min(args.cycles, 1000)):
            rc, crashes = cycle(ws, n, args)
            if crashes:
                crashed += 1
                print("cycle %d: rc=%s %s" % (n, rc, crashes[0]), flush=True)
    finally:
        ws.cleanup()
    print("%s: %d of %d cycles had a crashed child (%.1fs)"
          % ("quiesced" if args.quiesce else "immediate", crashed, args.cycles,
             time.time() - t0))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
