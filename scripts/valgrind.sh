#!/usr/bin/env bash
# Leaks per request: run `apache2 -X` (one process) with mod_pyhost under
# valgrind's memcheck over a mixed request run, N rounds and then 2N rounds,
# and report the definite leaks whose allocation stack passes through
# mod_pyhost, per request (the difference between the runs over the extra
# requests: what is left at exit regardless of the load cancels out).
#
#   scripts/valgrind.sh [N]      N rounds (default 50) of the mix:
#     embedded: hello, POST echo (16 KiB), POST echo (chunked),
#               file_wrapper (256 KiB file), streaming generator (8 chunks),
#               an app that raises (500), exc_info after the headers
#     daemon:   hello, POST echo, file_wrapper, streaming, an app that raises
#               (a WSGIDaemonProcess forked by the -X process, also under
#               valgrind; its report is read when it exits at the stop)
#
# Environment: PYHOST_VENV (default /opt/pyhost/venv: the module it holds is
# measured), PYHOST_VALGRIND_MPM (default event), PYHOST_VALGRIND_DIR (keep
# the logs there; default a new /tmp/pyhost-valgrind.XXXXXX, kept).
# Exits 1 if pyhost leaks per request (more definite leaks in the 2N run),
# or valgrind saw an invalid read/write/free in pyhost's frames. Slow (a few
# minutes: valgrind runs CPython ~30x slower); not part of CI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PYHOST_VENV:-/opt/pyhost/venv}"
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$venv/bin/pyhost" ] || { echo "valgrind: no pyhost in $venv (scripts/dev-env.sh)" >&2; exit 1; }
module="$("$venv/bin/pyhost" module-location)"
dir="${PYHOST_VALGRIND_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pyhost-valgrind.XXXXXX")}"
mkdir -p "$dir"
export PYH_VG_VENV="$venv" PYH_VG_MODULE="$module" PYH_VG_DIR="$dir" \
       PYH_VG_ROUNDS="${1:-50}" PYH_VG_MPM="${PYHOST_VALGRIND_MPM:-event}" \
       PYH_VG_REPO="$(dirname "$here")"
exec "$venv/bin/python" - <<'PY'
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["PYH_VG_REPO"], "tests"))
import harness  # noqa: E402  for the Apache binary, modules dir and User line

VENV = os.environ["PYH_VG_VENV"]
MODULE = os.environ["PYH_VG_MODULE"]
DIR = os.environ["PYH_VG_DIR"]
ROUNDS = int(os.environ["PYH_VG_ROUNDS"])
MPM = os.environ["PYH_VG_MPM"]
THREADS = 4  # worker threads of the -X process (ThreadsPerChild)

APP = r'''
import os, sys
DATA = os.path.join(os.path.dirname(__file__), "blob.bin")

def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(DATA)))])
        return environ["wsgi.file_wrapper"](open(DATA, "rb"), 32768)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk %d\n" % i for i in range(8))
    if path == "/raise":
        raise RuntimeError("pyhost-valgrind: an app error")
    if path == "/exc-after":
        # exc_info once the headers are out: start_response re-raises it.
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial ")
        try:
            raise ValueError("pyhost-valgrind: late")
        except ValueError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except ValueError:
                pass
        return [b"body"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]
'''

CONF = """\
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {dir}/run/httpd-{label}.pid
DefaultRuntimeDir {dir}/run
Mutex file:{dir}/run default
ErrorLog {dir}/error.log
LogLevel info
{user}
LoadModule mpm_{mpm}_module {moddir}/mod_mpm_{mpm}.so
{std}
LoadModule pyhost_module {module}
TypesConfig /etc/mime.types
Timeout 60
KeepAlive On
<IfModule !mpm_prefork_module>
    ThreadsPerChild {threads}
    ThreadLimit {threads}
</IfModule>
DocumentRoot "{dir}/htdocs"
<Directory "{dir}">
    Require all granted
</Directory>
WSGIPythonHome {venv}
WSGIChunkedRequest On
# Under valgrind a daemon takes far longer than the default 5s to stop, and
# one killed before its exit leaves no leak report.
WSGIDaemonProcess vg processes=1 threads=2 shutdown-timeout=300
WSGIScriptAlias /e {dir}/app.wsgi
WSGIScriptAlias /d {dir}/app.wsgi process-group=vg
"""

BODY = bytes(range(256)) * 64  # 16 KiB
MIX = [
    ("GET", "/e/hello", None, {}, 200),
    ("POST", "/e/echo", BODY, {}, 200),
    ("POST", "/e/echo", BODY, {"chunked": True}, 200),
    ("GET", "/e/file", None, {}, 200),
    ("GET", "/e/stream", None, {}, 200),
    ("GET", "/e/raise", None, {}, 500),
    ("GET", "/e/exc-after", None, {}, 200),
    ("GET", "/d/hello", None, {}, 200),
    ("POST", "/d/echo", BODY, {}, 200),
    ("GET", "/d/file", None, {}, 200),
    ("GET", "/d/stream", None, {}, 200),
    ("GET", "/d/raise", None, {}, 500),
]


def prepare():
    for d in ("run", "htdocs", "vg"):
        os.makedirs(os.path.join(DIR, d), exist_ok=True)
    with open(os.path.join(DIR, "app.wsgi"), "w") as f:
        f.write(APP)
    with open(os.path.join(DIR, "blob.bin"), "wb") as f:
        f.write(os.urandom(256 * 1024))
    with open(os.path.join(DIR, "htdocs", "ping.txt"), "w") as f:
        f.write("pong\n")
    harness._chmod_world_readable(DIR)
    for d in ("run", "vg"):
        os.chmod(os.path.join(DIR, d), 0o1777)


def module_functions():
    """Function names defined in mod_pyhost: a stack frame naming one of
    them is pyhost's."""
    out = subprocess.run(["nm", "--defined-only", MODULE], check=True,
                         capture_output=True, text=True).stdout
    names = {l.split()[2] for l in out.splitlines()
             if len(l.split()) == 3 and l.split()[1] in "tT"}
    # Statics the compiler inlined have no symbol, but valgrind names them
    # from the debug info: take every function defined in module/*.c too
    # (this style puts the name on the line that opens the definition).
    defn = re.compile(r"^[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\([^;]*$")
    src = os.path.join(os.environ["PYH_VG_REPO"], "module")
    for name in os.listdir(src):
        if name.endswith(".c"):
            with open(os.path.join(src, name)) as f:
                for line in f:
                    m = defn.match(line)
                    if m and m.group(1) not in ("if", "for", "while", "switch", "return"):
                        names.add(m.group(1))
    return names


def request(port, method, path, body, opts, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        if body is not None and opts.get("chunked"):
            conn.request(method, path, body=iter([body[:5000], body[5000:]]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, data
    finally:
        conn.close()


def run(label, rounds):
    port = harness.free_port()
    conf = os.path.join(DIR, "httpd-%s.conf" % label)
    moddir = harness.apache_modules_dir()
    with open(conf, "w") as f:
        f.write(CONF.format(dir=DIR, label=label, port=port, user=harness.run_user(), mpm=MPM,
                            moddir=moddir, std=harness.std_module_lines(moddir),
                            module=MODULE, venv=VENV, threads=THREADS))
    for name in os.listdir(os.path.join(DIR, "vg")):
        if name.startswith(label + "."):
            os.unlink(os.path.join(DIR, "vg", name))
    env = dict(os.environ, PYTHONMALLOC="malloc")
    # --keep-debuginfo: Apache unloads its modules (and with them libpython)
    # before it exits, when the leak check runs; without it every frame of
    # theirs would be "???".
    cmd = ["valgrind", "--tool=memcheck", "--leak-check=full", "--keep-debuginfo=yes",
           "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
           "--num-callers=50", "--error-limit=no",
           "--log-file=%s/vg/%s.%%p.log" % (DIR, label),
           harness.find_apache(), "-X", "-f", conf]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=open(os.path.join(DIR, label + ".stdout"), "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                sys.exit("valgrind: apache exited (%s) before answering; see %s"
                         % (proc.returncode, DIR))
            try:
                if request(port, "GET", "/ping.txt", None, {}, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("valgrind: apache did not answer within 300s")
            time.sleep(0.5)
        # Warm up: imports, first-request caches, the daemon's interpreter,
        # and the per-thread state of every worker thread (kept for the
        # thread's life, so not a per-request cost): clients on as many
        # connections at once as there are threads.
        def warm():
            for _ in range(3):
                for method, path, body, opts, want in MIX:
                    request(port, method, path, body, opts)
        clients = [threading.Thread(target=warm) for _ in range(THREADS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        t1 = time.time()
        bad = 0
        for _ in range(rounds):
            for method, path, body, opts, want in MIX:
                status, data = request(port, method, path, body, opts)
                if status != want or (path.endswith("/echo") and data != body):
                    if not bad:
                        print("valgrind: %s %s: %s %r (wanted %s)"
                              % (method, path, status, data[:200], want))
                    bad += 1
        print("valgrind: %s: %d rounds x %d requests in %.0fs (startup %.0fs), %d wrong answers"
              % (label, rounds, len(MIX), time.time() - t1, t1 - t0, bad), flush=True)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # Apache's stop: child_exit, pool cleanups
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    # The daemon process notices its parent is gone and exits on its own:
    # wait (bounded) until every log of this run has its leak summary.
    deadline = time.time() + 120
    while time.time() < deadline:
        logs = [os.path.join(DIR, "vg", n) for n in os.listdir(os.path.join(DIR, "vg"))
                if n.startswith(label + ".")]
        texts = [open(p, errors="replace").read() for p in logs]
        if all("ERROR SUMMARY" in t for t in texts):
            break
        time.sleep(1)
    return dict(zip(logs, texts)), bad


# "N bytes in B blocks are definitely lost", or "N (D direct, I indirect)
# bytes in ...": the direct bytes are the definite leak (valgrind's own
# summary counts the indirect ones apart).
RECORD_RE = re.compile(r"^==\d+== ([\d,]+) (?:\(([\d,]+) direct, [\d,]+ indirect\) )?"
                       r"bytes in ([\d,]+) blocks are definitely lost")
FRAME_RE = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-F]+: (\S+)(.*)$")
# Memory errors: an invalid access counts when any frame is pyhost's; use of
# uninitialised memory only when the innermost frame is (CPython's start-up
# has a few of its own, under pyhost's frames).
ERROR_RE = re.compile(r"^==\d+== (Invalid (?:read|write|free)|Mismatched free|"
                      r"Conditional jump|Use of uninitialised|Syscall param)")
ANY_FRAME_ERRORS = ("Invalid", "Mismatched")


def num(text):
    return int(text.replace(",", ""))


def analyse(text, ours):
    """One process's log: {stack: [bytes, blocks]} of the definite leaks
    whose stack has a pyhost frame, the memory errors in pyhost frames, and
    valgrind's total of definite bytes."""
    lines = text.splitlines()
    leaks, errors = {}, []
    i = 0
    while i < len(lines):
        m = RECORD_RE.match(lines[i])
        e = ERROR_RE.match(lines[i])
        if not (m or e):
            i += 1
            continue
        j = i + 1
        frames = []
        while j < len(lines) and FRAME_RE.match(lines[j]):
            frames.append(FRAME_RE.match(lines[j]).group(1, 2))
            j += 1
        names = [f[0] for f in frames]
        mine = any(n in ours for n in names)
        if e and not e.group(1).startswith(ANY_FRAME_ERRORS):
            mine = bool(names) and names[0] in ours
        if m and mine:
            # Addresses differ between runs; names and lines do not.
            key = "\n".join("    %s%s" % f for f in frames)
            acc = leaks.setdefault(key, [0, 0])
            acc[0] += num(m.group(2) or m.group(1))
            acc[1] += num(m.group(3))
        if e and mine:
            errors.append("\n".join([lines[i]] + ["    %s%s" % f for f in frames]))
        i = j
    total = re.search(r"definitely lost: ([\d,]+) bytes", text)
    return leaks, errors, (num(total.group(1)) if total else None)


def role_of(text):
    # Apache -X is our child; a daemon is the child Apache forked.
    ppid = re.search(r"Parent PID: (\d+)", text)
    return "apache -X" if ppid and int(ppid.group(1)) == os.getpid() else "daemon"


def main():
    prepare()
    ours = module_functions()
    per = {}  # role -> label -> (leaks, total)
    failed = False
    for label, rounds in (("n", ROUNDS), ("2n", 2 * ROUNDS)):
        texts, bad = run(label, rounds)
        if bad:
            print("valgrind: %s: %d requests got a wrong answer" % (label, bad))
            failed = True
        for path, text in sorted(texts.items()):
            role = role_of(text)
            leaks, errors, total = analyse(text, ours)
            if "LEAK SUMMARY" not in text and "All heap blocks were freed" not in text:
                print("valgrind: %s %s (%s): no leak report (killed before its exit?)"
                      % (label, role, os.path.basename(path)))
                failed = True
            b = sum(v[0] for v in leaks.values())
            k = sum(v[1] for v in leaks.values())
            print("valgrind: %s %s (%s): definite leaks with a pyhost frame: %d bytes in"
                  " %d blocks (all definite leaks: %s bytes); memory errors in pyhost"
                  " frames: %d" % (label, role, os.path.basename(path), b, k, total,
                                   len(errors)))
            for err in errors[:5]:
                print(err)
            failed = failed or bool(errors)
            per.setdefault(role, {})[label] = (leaks, total)
    extra = ROUNDS * len(MIX)
    for role, d in sorted(per.items()):
        n, n2 = d.get("n", ({}, 0))[0], d.get("2n", ({}, 0))[0]
        nb, nk = sum(v[0] for v in n.values()), sum(v[1] for v in n.values())
        mb, mk = sum(v[0] for v in n2.values()), sum(v[1] for v in n2.values())
        print("valgrind: FIGURE %s: definite leaks with a pyhost frame: N=%d rounds"
              " %d B in %d blocks, 2N %d B in %d blocks: %.2f bytes, %.3f blocks per"
              " request (over %d extra requests)"
              % (role, ROUNDS, nb, nk, mb, mk, (mb - nb) / extra, (mk - nk) / extra, extra))
        for key in sorted(set(n) | set(n2)):
            a, b = n.get(key, [0, 0]), n2.get(key, [0, 0])
            if b[1] > a[1] or b[0] > a[0]:
                print("valgrind: grows with the requests: N %d B/%d blocks, 2N %d B/%d"
                      " blocks, allocated at\n%s" % (a[0], a[1], b[0], b[1], key))
                failed = True
    print("valgrind: logs in %s/vg" % DIR)
    sys.exit(1 if failed else 0)


main()
PY
