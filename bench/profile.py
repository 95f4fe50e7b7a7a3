"""Where a hello request's time goes: runs Apache single-process (-X) under
valgrind's callgrind, counting instructions only inside
ap_process_request (one request, start to finish), sends a bounded number
of keep-alive hellos, and prints instructions per request and the top
functions, for pyhost and for the C handler as the reference.

    /opt/pyhost/venv/bin/python bench/profile.py            # c and pyhost
    /opt/pyhost/venv/bin/python bench/profile.py --setups pyhost --requests 500
    /opt/pyhost/venv/bin/python bench/profile.py --setups c,pyhost_asgi,uvicorn --all-threads

An ASGI request runs on two threads (Apache's worker, then the event loop's
thread, and back), and callgrind's collection toggles per thread: counting
only inside ap_process_request would miss the loop's side. --all-threads
(forced for pyhost_asgi, and for uvicorn, which runs as one process of
its own as the reference) counts every instruction in the process instead;
differencing the n and 2n runs still cancels startup, and what is left
besides requests is the idle timers of a few seconds (small; the C handler
measured the same way shows how small).

Instruction counts are repeatable from run to run, unlike req/s. The raw
callgrind files are kept under --out for callgrind_annotate / kcachegrind.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


WARM = 50
TOTAL = "PROGRAM TOTALS"
PATH = ["/hello"]
# "  1,234 (12.34%)  file:function [object]" from callgrind_annotate
LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([\s\d.%]+\)\s+)?(\S.*)$")
OBJ = re.compile(r"\[([^\]]+)\]\s*$")


def drive(port, path, n):
    # the first request under valgrind can take minutes: the ASGI app
    # imports FastAPI and pydantic, and the event loop starts, at ~50x
    # slower than native
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for _ in range(n):
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError("%s answered %d: %r" % (path, resp.status, body))
    conn.close()


def callgrind(b, name, n, out, all_threads=False):
    """Instruction counts per function for one run of n hellos (plus the
    WARM ones every run makes), as {function: (self, inclusive)}."""
    if name == "uvicorn":
        return callgrind_uvicorn(b, n, out)
    setup = b.make(name)
    srv = setup.servers[0]
    conf = srv.argv[srv.argv.index("-f") + 1]
    if all_threads:
        collect = ["--collect-atstart=yes"]
    else:
        collect = ["--collect-atstart=no",
                   # reading the request, then handling it (the async
                   # variant is what the event MPM calls)
                   "--toggle-collect=ap_read_request",
                   "--toggle-collect=ap_process_async_request",
                   "--toggle-collect=ap_process_request"]
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out
           ] + collect + [srv.argv[0], "-X", "-f", conf]
    bench.log("callgrind %s: %d requests" % (name, n))
    # callgrind writes the file at exit, after Apache has switched to its
    # User: that user must own it already.
    open(out, "w").close()
    if os.geteuid() == 0:
        shutil.chown(out, "www-data", "www-data")
    with open(out + ".log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        if not bench.wait_port(srv.port, proc, timeout=120):
            raise RuntimeError("%s did not start under valgrind; see %s.log"
                               % (name, out))
        drive(srv.port, PATH[0], WARM + n)
    finally:
        bench.stop_proc(proc, signal.SIGTERM, timeout=120)
    return annotate(out)


def callgrind_uvicorn(b, n, out):
    """uvicorn as the reference for pyhost_asgi: one process (no
    --workers, whose spawned children valgrind would not follow), uvloop +
    httptools, the same app, every thread counted."""
    # The socket is bound here and handed over (--fd): uvicorn under
    # valgrind takes a minute to start, long enough for another process to
    # take a port that was only found free.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           os.path.join(b.peers, "bin", "python"), "-m", "uvicorn",
           "--app-dir", b.apps, "--fd", str(sock.fileno()),
           "--loop", "uvloop", "--http", "httptools", "--log-level",
           "warning", "--no-access-log", "asgi_app:app"]
    bench.log("callgrind uvicorn: %d requests" % n)
    with open(out + ".log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                pass_fds=(sock.fileno(),))
    sock.close()
    try:
        if not bench.wait_port(port, proc, timeout=300):
            raise RuntimeError("uvicorn did not start under valgrind; see "
                               "%s.log" % out)
        drive(port, PATH[0], WARM + n)
    finally:
        bench.stop_proc(proc, signal.SIGINT, timeout=120)
    return annotate(out)


def annotate(out):
    """{function: (self, inclusive)} from one callgrind file."""
    costs = {}
    for inclusive in ("no", "yes"):
        # --auto=no: no source annotation, whose "=> callee" lines would
        # read as functions (the Cython bridge's .c file is on disk)
        ann = subprocess.run(["callgrind_annotate", "--threshold=100",
                              "--auto=no", "--inclusive=" + inclusive, out],
                             capture_output=True, text=True,
                             timeout=300).stdout
        for line in ann.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            fn = m.group(2).strip()
            if "PROGRAM TOTALS" in fn:
                fn = TOTAL
            ir = int(m.group(1).replace(",", ""))
            self_ir, inc_ir = costs.get(fn, (0, 0))
            costs[fn] = (ir, inc_ir) if inclusive == "no" else (self_ir, ir)
    return costs


def profile(b, name, n, out_dir, all_threads=False, reuse=False):
    """Per-request instructions by function: the difference between a run
    of n and a run of 2n requests, divided by n, so that startup, the
    app's import and first-request caches drop out exactly (callgrind's
    --zero needs vgdb, which cannot interrupt Apache blocked in epoll)."""
    tag = name + (".all" if all_threads else "")
    runs = []
    for k in (n, 2 * n):
        out = os.path.join(out_dir, "%s.%d.out" % (tag, k))
        if reuse and os.path.getsize(out) > 0:
            runs.append(annotate(out))
        else:
            runs.append(callgrind(b, name, k, out, all_threads))
    small, big = runs
    per = {}
    for fn, (s2, i2) in big.items():
        s1, i1 = small.get(fn, (0, 0))
        per[fn] = ((s2 - s1) / float(n), (i2 - i1) / float(n))
    return per


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default="c,pyhost")
    ap.add_argument("--requests", type=int, default=1000,
                    help="the small run; the big one is twice this")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--path", default="/hello",
                    help="URL of bench/apps/app.py to profile (pyhost only)")
    ap.add_argument("--peers", default=bench.DEFAULT_PEERS)
    ap.add_argument("--out", default="/tmp/pyhost-profile")
    ap.add_argument("--all-threads", action="store_true",
                    help="count every thread from the start (forced for "
                         "ASGI setups, whose loop thread never enters "
                         "ap_process_request)")
    ap.add_argument("--reuse", action="store_true",
                    help="read the callgrind files a previous run left in "
                         "--out instead of running valgrind again")
    args = ap.parse_args(argv)
    PATH[0] = args.path
    if not shutil.which("valgrind"):
        raise SystemExit("profile: no valgrind (apt-get install valgrind)")
    os.makedirs(args.out, exist_ok=True)
    os.chmod(args.out, 0o1777)  # Apache -X writes it as its User (www-data)
    workdir = bench.make_workdir("pyhost-profile-")
    b = bench.Bench(workdir, args.peers)
    try:
        for name in [s for s in args.setups.split(",") if s]:
            all_threads = (args.all_threads or name in bench.ASGI_SETUPS
                           or name == "uvicorn")
            per = profile(b, name, args.requests, args.out, all_threads,
                          args.reuse)
            total = per.pop(TOTAL, (0, 0))[0]
            print("== %s: %.0f instructions per keep-alive GET %s in %s "
                  "(runs of %d and %d requests, differenced)"
                  % (name, total, args.path,
                     "every thread of the process" if all_threads else
                     "ap_read_request + ap_process_async_request",
                     args.requests, 2 * args.requests))
            # self cost by shared object: Apache, mod_pyhost, the Cython
            # bridge, libpython, uvloop, libc ...
            by_obj = {}
            for fn, c in per.items():
                m = OBJ.search(fn)
                obj = os.path.basename(m.group(1)) if m else "?"
                by_obj[obj] = by_obj.get(obj, 0.0) + c[0]
            print("-- self instructions per request by object")
            for obj, c in sorted(by_obj.items(), key=lambda kv: -kv[1]):
                if abs(c) >= total * 0.005:
                    print("%10.0f %5.1f%%  %s" % (
                        c, 100.0 * c / total if total else 0, obj))
            for title, k in (("self", 0), ("inclusive", 1)):
                print("-- top %d by %s instructions per request"
                      % (args.top, title))
                # An inclusive count above the total is callgrind's sum
                # over a recursive cycle (the script's first load runs
                # the app's imports through the same functions), not a
                # per-request cost: left out.
                rows = [(fn, c) for fn, c in per.items()
                        if k == 0 or c[k] <= total * 1.001]
                for fn, c in sorted(rows, key=lambda kv: -kv[1][k])[:args.top]:
                    print("%10.0f %5.1f%%  %s" % (c[k], 100.0 * c[k] / total
                                                 if total else 0, fn[:150]))
            print()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
