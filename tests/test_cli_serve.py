"""`pyhost serve` end to end: the installed command runs a real Apache on an
ephemeral port; the tests talk HTTP(S) to it and stop it with signals."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import harness

PYHOST = os.path.join(os.path.dirname(sys.executable), "pyhost")
URL_RE = re.compile(r"pyhost: serving on (http://[^ ]+/)(?: and (https://[^ ]+/))?")


class Serve:
    """One `pyhost serve` process; its output is collected by threads so
    Apache never blocks on a full pipe."""

    def __init__(self, args, cwd=None, prefix=(), env=None):
        self.args = [*prefix, PYHOST, "serve", *args]
        self.proc = subprocess.Popen(self.args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=self._read, args=(s, buf), daemon=True)
                        for s, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()
        self.url = self.https_url = None

    @staticmethod
    def _read(stream, buf):
        for line in iter(stream.readline, b""):
            buf.append(line.decode("utf-8", "replace"))

    def output(self):
        return "".join(self.out) + "".join(self.err)

    def wait_url(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = URL_RE.search("".join(self.out))
            if m:
                self.url, self.https_url = m.group(1), m.group(2)
                return self.url
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail("pyhost serve did not print its URL:\n%s" % self.output())

    @property
    def port(self):
        return int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def get(self, path, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            return harness.do_request(conn, "GET", path, headers=headers)
        finally:
            conn.close()

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # pyhost's PDEATHSIG takes Apache down with it
                self.proc.wait(10)
        for t in self.readers:
            t.join(5)
        return self.proc.returncode


@pytest.fixture
def serve():
    started = []

    def start(*args, cwd=None, prefix=()):
        s = Serve([str(a) for a in args], cwd=cwd, prefix=prefix)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def app_copy(workspace, token):
    """A private, world-readable copy of apps/serve_app (tests edit it)."""
    path = os.path.join(workspace.root, "serve-app-" + token)
    shutil.copytree(os.path.join(workspace.apps, "serve_app"), path)
    harness._chmod_world_readable(path)
    return path


def processes_mentioning(text):
    """pids whose command line contains text (Apache's: -d SERVER_ROOT)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_serve_script_answers_logs_and_stops_clean(serve, app_copy, workspace, token):
    root = os.path.join(workspace.root, "serve-root-" + token)
    s = serve(os.path.join(app_copy, "webapp.py"), "--port", harness.free_port(),
              "--server-root", root, "--processes", "2", "--threads", "2")
    s.wait_url()
    r = s.get("/hello?x=1", headers={"User-Agent": "ua-" + token})
    assert r.status == 200, s.output()
    # The script's directory is on sys.path: webhelper imports.
    assert r.json() == {"message": "version-1", "script_name": "", "path_info": "/hello",
                        "https": "http", "protocol": "HTTP/1.1"}
    assert harness.wait_for(lambda: ("ua-" + token) in "".join(s.out), timeout=5), \
        "no combined-format access log line on stdout:\n" + s.output()
    line = next(l for l in s.out if "ua-" + token in l)
    assert '"GET /hello?x=1 HTTP/1.1" 200' in line and '"-"' in line
    apache_pids = processes_mentioning(root)
    assert len(apache_pids) >= 2, "expected Apache's parent and children"

    assert s.stop(signal.SIGINT) == 0, s.output()
    assert harness.wait_for(lambda: not processes_mentioning(root), timeout=10), \
        "stray Apache processes after SIGINT: %s" % processes_mentioning(root)


def test_serve_sigterm_exits_zero(serve):
    s = serve(os.path.join(harness.HERE, "..", "examples", "hello.py"), "--port", harness.free_port(),
              "--mpm", "prefork", "--processes", "2")
    s.wait_url()
    assert s.get("/").body == b"Hello, world!\n"
    assert s.stop(signal.SIGTERM) == 0, s.output()


def test_serve_module_callable_reloads_edited_module(serve, app_copy):
    s = serve("webapp:application", "--port", harness.free_port(), "--reload", cwd=app_copy)
    s.wait_url()
    assert s.get("/").json()["message"] == "version-1"
    helper = os.path.join(app_copy, "webhelper.py")
    with open(helper, "w") as f:
        f.write('MESSAGE = "version-2"\n')

    def seen():
        try:
            r = s.get("/")
        except OSError:
            return None
        return r.status == 200 and r.json()["message"] == "version-2"

    assert harness.wait_for(seen, timeout=20, interval=0.2), \
        "edit of webhelper.py not picked up:\n" + s.output()
    assert "webhelper.py changed" in "".join(s.out)
    assert s.stop() == 0


def test_serve_daemon_mode_with_reload(serve, app_copy, workspace, token):
    root = os.path.join(workspace.root, "serve-daemon-" + token)
    s = serve("webapp:application", "--port", harness.free_port(), "--server-root", root,
              "--daemon", "--daemon-processes", "2", "--daemon-threads", "3", "--reload",
              cwd=app_copy)
    s.wait_url()

    def daemons():
        out = []
        for pid in processes_mentioning(root):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if f.read().startswith(b"(wsgi:pyhost)"):
                        out.append(pid)
            except OSError:
                pass
        return out
    assert harness.wait_for(lambda: len(daemons()) == 2, timeout=15), s.output()
    r = s.get("/")
    assert r.status == 200 and r.json()["message"] == "version-1", s.output()
    with open(os.path.join(app_copy, "webhelper.py"), "w") as f:
        f.write('MESSAGE = "version-2"\n')

    def seen():
        try:
            r = s.get("/")
        except OSError:
            return None
        return r.status == 200 and r.json()["message"] == "version-2"
    assert harness.wait_for(seen, timeout=20, interval=0.2), s.output()
    assert s.stop(signal.SIGINT) == 0, s.output()
    assert harness.wait_for(lambda: not processes_mentioning(root), timeout=10), \
        "processes left after SIGINT: %s" % processes_mentioning(root)


def test_serve_url_alias_static_files_by_apache(serve, app_copy):
    s = serve(os.path.join(app_copy, "webapp.py"), "--port", harness.free_port(),
              "--url-alias", "/static", os.path.join(app_copy, "static"))
    s.wait_url()
    r = s.get("/static/style.css")
    assert r.status == 200 and r.body == b"body { color: teal; }\n"
    assert r.header("Content-Type", "").startswith("text/css")
    assert r.header("ETag"), "Apache's core file handler sets an ETag"
    # Everything else, including a look-alike prefix, is the app's.
    for path in ("/", "/staticfoo", "/app/static/style.css"):
        j = s.get(path).json()
        assert j["message"] == "version-1" and j["path_info"] == path and j["script_name"] == ""
    assert s.get("/static/missing.css").status == 404


def make_certificate(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_serve_https_with_http2(serve, app_copy):
    cert, key = make_certificate(app_copy)
    https_port = harness.free_port()
    s = serve(os.path.join(app_copy, "webapp.py"), "--port", harness.free_port(),
              "--https-port", https_port, "--ssl-certificate-file", cert,
              "--ssl-certificate-key-file", key, "--http2")
    s.wait_url()
    assert s.https_url == "https://127.0.0.1:%d/" % https_port

    ctx = ssl.create_default_context(cafile=cert)
    conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=ctx, timeout=15)
    try:
        r = harness.do_request(conn, "GET", "/tls")
    finally:
        conn.close()
    assert r.status == 200
    assert r.json()["https"] in ("on", "https") and r.json()["path_info"] == "/tls"

    # HTTP/2 is offered by ALPN on the TLS port.
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"
    assert s.get("/").status == 200  # plain HTTP still served
    assert s.stop() == 0


def test_serve_django_project(serve, workspace):
    s = serve("--django", os.path.join(workspace.apps, "djproj"), "--port", harness.free_port())
    s.wait_url()
    r = s.get("/hello/")
    assert r.status == 200, s.output()
    assert r.body == b"hello from django path=/hello/"


def test_setup_only_writes_config_that_passes_configtest(app_copy, workspace, token):
    out = os.path.join(workspace.root, "setup-" + token)
    port = harness.free_port()
    p = subprocess.run([PYHOST, "serve", os.path.join(app_copy, "webapp.py"), "--port", str(port),
                        "--setup-only", out, "--url-alias", "/static", os.path.join(app_copy, "static")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ctl = os.path.join(out, "apachectl")
    assert os.access(ctl, os.X_OK)
    t = subprocess.run([ctl, "configtest"], capture_output=True, text=True, timeout=60)
    assert t.returncode == 0 and "Syntax OK" in t.stderr, t.stdout + t.stderr

    # And it runs: apachectl start / stop on the generated config.
    assert subprocess.run([ctl, "start"], timeout=60).returncode == 0
    try:
        def answer():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                return harness.do_request(conn, "GET", "/static/style.css")
            except OSError:
                return None
        r = harness.wait_for(answer, timeout=20, interval=0.1)
        assert r is not None and r.status == 200, "apachectl start did not serve"
    finally:
        subprocess.run([ctl, "stop"], timeout=60)
    assert harness.wait_for(lambda: not processes_mentioning(out), timeout=15), \
        "apachectl stop left processes running"
    with open(os.path.join(out, "logs", "access.log")) as f:
        assert "GET /static/style.css" in f.read()


@pytest.mark.parametrize("args, message", [
    (["--daemon-threads", "4"], "need --daemon"),
    (["--mpm", "prefork", "--threads", "4"], "--threads does not apply"),
    (["--https-port", "8443"], "needs --ssl-certificate-file"),
    (["--reload", "--setup-only", "/tmp/x"], "--reload needs"),
    (["--daemon", "--daemon-threads", "0"], "--daemon-threads: must be at least 1"),
    (["--processes", "two"], "'two' is not a whole number"),
    (["--user", "no-such-user-pyhost"], "--user no-such-user-pyhost: no such user"),
    (["--log-level", "verbose"], "'verbose' is not an Apache log level"),
    (["--log-level", "info ssl:debug"], None),
    (["--request-timeout", "5"], "--request-timeout needs --daemon"),
    (["--https-only"], "--https-only needs --https-port"),
    (["--hsts"], "--hsts needs --https-port"),
    (["--rotate-logs"], "--rotate-logs rotates --error-log/--access-log files"),
    (["--env", "1X=2"], "'1X=2' is not KEY=VALUE"),
    (["--mount-point", "app"], "--mount-point: must be a URL path"),
    (["--access-log-format", "fancy"], "--access-log-format 'fancy' is neither"),
])
def test_serve_refuses_bad_options_in_one_line(args, message):
    # --setup-only into a fresh directory: what is checked is the options;
    # a valid set then writes a config instead of starting a server.
    out = tempfile.mkdtemp(prefix="pyhost-test-opts-")
    os.chmod(out, 0o755)
    try:
        p = subprocess.run([PYHOST, "serve", os.path.join(harness.HERE, "..", "examples", "hello.py"),
                            "--lazy", *args, *([] if "--setup-only" in args else ["--setup-only", out])],
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if message is None:
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_serve_refuses_a_taken_port_and_a_missing_target():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        p = subprocess.run([PYHOST, "serve", os.path.join(harness.HERE, "..", "examples", "hello.py"),
                            "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "cannot listen on 127.0.0.1:%d" % port in p.stderr, p.stderr
    p = subprocess.run([PYHOST, "serve", "nosuch.py"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "nosuch.py is not a file" in p.stderr
    p = subprocess.run([PYHOST, "serve", "nosuchmodule:app"], capture_output=True, text=True,
                       timeout=30, cwd="/tmp")
    assert p.returncode == 2 and "module nosuchmodule is not found" in p.stderr


def _request_in_flight(s, workspace, token, seconds):
    """Starts GET /?sleep=seconds in a thread; returns (thread, result dict)
    once the app has started on it."""
    result = {}

    def fetch():
        try:
            r = s.get("/?sleep=%s&token=%s" % (seconds, token))
            result["status"], result["body"] = r.status, r.body
        except Exception as e:  # the assertion below reports it
            result["error"] = repr(e)

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    started = os.path.join(workspace.state, "started-" + token)
    assert harness.wait_for(lambda: os.path.exists(started), timeout=15), s.output()
    return t, result


@pytest.mark.parametrize("mode", ["embedded", "daemon"])
def test_serve_sigterm_lets_requests_in_flight_finish(serve, workspace, token, mode):
    # A container's stop (docker stop, a rolling update) is a SIGTERM: the
    # request in flight must complete, not be cut, and Python must end
    # normally (atexit handlers run).
    args = [os.path.join(workspace.apps, "slow_serve.py"), "--port", harness.free_port()]
    if mode == "daemon":
        args += ["--daemon", "--daemon-processes", "1"]
    s = serve(*args)
    s.wait_url()
    t, result = _request_in_flight(s, workspace, token, 2)
    s.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert result == {"status": 200, "body": b"slept 2.0\n"}, (result, s.output())
    assert s.proc.wait(30) == 0, s.output()
    for r in s.readers:
        r.join(5)
    assert "stopping gracefully: 1 request in flight" in s.output(), s.output()
    finalized = [n for n in os.listdir(workspace.state) if n.startswith("finalized-" + token)]
    assert finalized, "Python was not finalized (no atexit marker):\n" + s.output()


def test_serve_stuck_request_is_cut_after_graceful_timeout(serve, workspace, token):
    # A request that never ends must not hold the stop past the timeout.
    s = serve(os.path.join(workspace.apps, "slow_serve.py"), "--port", harness.free_port(),
              "--graceful-timeout", "1")
    s.wait_url()
    t, result = _request_in_flight(s, workspace, token, 60)
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(30) == 0, s.output()
    took = time.monotonic() - t0
    t.join(10)
    assert "status" not in result, result
    assert took < 20, "stop took %.1fs:\n%s" % (took, s.output())
    assert "waiting up to 1s" in s.output(), s.output()


def test_serve_second_ctrl_c_stops_at_once(serve, workspace, token):
    s = serve(os.path.join(workspace.apps, "slow_serve.py"), "--port", harness.free_port())
    s.wait_url()
    t, result = _request_in_flight(s, workspace, token, 60)
    s.proc.send_signal(signal.SIGINT)
    assert harness.wait_for(lambda: "stopping gracefully" in s.output(), timeout=10), s.output()
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(30) == 0, s.output()
    # The default graceful timeout is 30 s: a second Ctrl-C must not wait it out.
    assert time.monotonic() - t0 < 20, s.output()
    assert "stopping now" in s.output(), s.output()


def _serve_fails(args, timeout=60, tmpdir=None):
    """Runs pyhost serve expecting it to refuse to start; (code, output).
    tmpdir: its TMPDIR, where a temporary server root would be made."""
    env = dict(os.environ, TMPDIR=tmpdir) if tmpdir else None
    proc = subprocess.run([PYHOST, "serve", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def _private_tmpdir(workspace, token):
    path = os.path.join(workspace.root, "tmpdir-" + token)
    os.makedirs(path)
    os.chmod(path, 0o755)  # Apache's children pass through a server root made in it
    return path


@pytest.mark.parametrize("script, expected", [
    ("syntax_error.py", ["SyntaxError", "syntax_error.py\", line 2"]),
    ("import_error.py", ["ModuleNotFoundError: No module named 'no_such_module_for_pyhost_tests'",
                         "import_error.py\", line 4, in <module>"]),
])
def test_serve_refuses_an_app_that_does_not_load(workspace, token, script, expected):
    # mod_wsgi-express and gunicorn fail at boot; pyhost serve used to say
    # "serving on" and answer 500.
    tmpdir = _private_tmpdir(workspace, token)
    code, out = _serve_fails([os.path.join(workspace.apps, "serve_bad", script),
                              "--port", harness.free_port()], tmpdir=tmpdir)
    assert code == 1, out
    assert "serving on" not in out, out
    for text in expected:
        assert text in out, out
    assert "pyhost: the app failed to load:" in out and "--lazy" in out, out
    # Readable lines, and none of pyhost's own loading frames.
    assert "\\n" not in out and "preflight.py" not in out and "<frozen" not in out, out
    assert os.listdir(tmpdir) == [], "a failed start left a server root behind"


def test_serve_names_the_callables_a_script_defines(workspace, serve):
    script = os.path.join(workspace.apps, "serve_bad", "other_name.py")
    code, out = _serve_fails([script, "--port", harness.free_port()])
    assert code == 1, out
    assert "defines no `application`: it defines app, make_app" in out, out
    assert "--callable-object" in out, out
    # ... and the option it names works.
    s = serve(script, "--port", harness.free_port(), "--callable-object", "app")
    s.wait_url()
    assert s.get("/").json() == {"served_by": "app"}


def test_serve_callable_object_with_module_target(workspace, serve):
    s = serve("other_name", "--port", harness.free_port(), "--callable-object", "app",
              cwd=os.path.join(workspace.apps, "serve_bad"))
    s.wait_url()
    assert s.get("/").json() == {"served_by": "app"}
    code, out = _serve_fails(["other_name:make_app", "--callable-object", "app",
                              "--port", harness.free_port()])
    assert code == 2 and "give it once" in out, out


def test_serve_lazy_starts_a_broken_app_anyway(workspace, serve):
    s = serve(os.path.join(workspace.apps, "serve_bad", "import_error.py"),
              "--port", harness.free_port(), "--lazy")
    s.wait_url()
    assert s.get("/").status == 500


def test_serve_output_redirected_to_a_file_keeps_every_line(workspace, token, tmp_path):
    # `pyhost serve ... > log 2>&1`: Apache used to reopen /dev/stdout and
    # /dev/stderr, writing over pyhost's own lines at its own offsets.
    out = tmp_path / "serve.log"
    port = harness.free_port()
    with open(out, "wb") as f:
        proc = subprocess.Popen([PYHOST, "serve", os.path.join(workspace.apps, "slow_serve.py"),
                                 "--port", str(port)], stdout=f, stderr=f, stdin=subprocess.DEVNULL)
    try:
        assert harness.wait_for(lambda: "serving on" in out.read_text(), timeout=30), out.read_text()
        for i in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            r = harness.do_request(conn, "GET", "/?token=%s" % token,
                                   headers={"User-Agent": "ua-%s-%d" % (token, i)})
            conn.close()
            assert r.status == 200
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = out.read_text()
    for needle in ["AH00489", "pyhost: serving on http://127.0.0.1:%d/" % port,
                   "ua-%s-0" % token, "ua-%s-1" % token, "ua-%s-2" % token,
                   "pyhost: stopping gracefully", "AH00492"]:
        assert needle in text, "%r missing from the redirected output:\n%s" % (needle, text)
    assert "\0" not in text, text


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_serve_as_another_user_than_the_terminals(serve, workspace, token):
    # Our stdout/stderr are pipes owned by root: Apache running as nobody
    # cannot reopen /dev/stderr (AH00091) and used not to start at all.
    s = serve(os.path.join(workspace.apps, "slow_serve.py"), "--port", harness.free_port(),
              # runuser's way, minus runuser's own process: setpriv execs
              # pyhost, so our signals reach it.
              prefix=("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"))
    s.wait_url()
    r = s.get("/?token=%s" % token, headers={"User-Agent": "ua-" + token})
    assert r.status == 200 and r.body == b"slept 0.0\n"
    assert harness.wait_for(lambda: ("ua-" + token) in s.output(), timeout=5), s.output()
    assert s.stop(signal.SIGTERM) == 0, s.output()
    assert "AH00091" not in s.output()


def test_serve_relative_log_paths_are_the_users(serve, workspace, token, tmp_path):
    s = serve(os.path.join(workspace.apps, "slow_serve.py"), "--port", harness.free_port(),
              "--error-log", "err.log", "--access-log", "logs/access.log", cwd=str(tmp_path))
    (tmp_path / "logs").mkdir()
    s.wait_url()
    assert s.get("/?token=%s" % token, headers={"User-Agent": "ua-" + token}).status == 200
    assert s.stop(signal.SIGINT) == 0, s.output()
    assert "ua-" + token in (tmp_path / "logs" / "access.log").read_text()
    assert "AH00489" in (tmp_path / "err.log").read_text()


@pytest.mark.parametrize("mode", ["embedded", "daemon"])
def test_serve_working_directory_is_the_same_in_both_modes(serve, workspace, token, mode):
    # It was the start directory in embedded mode and the daemon user's home
    # (/var/www) in daemon mode. (Under the workspace: pytest's tmp_path is
    # private to root, so the children could not enter it.)
    base = os.path.join(workspace.root, "cwd-" + token)
    start, chosen = os.path.join(base, "start"), os.path.join(base, "chosen")
    for d in (base, start, chosen):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    extra = ["--daemon", "--daemon-processes", "1"] if mode == "daemon" else []
    app = os.path.join(workspace.apps, "serve_cwd.py")
    s = serve(app, "--port", harness.free_port(), *extra, cwd=start)
    s.wait_url()
    assert s.get("/").json() == {"cwd": start}, s.output()
    s.stop()
    s = serve(app, "--port", harness.free_port(), "--working-directory", chosen, *extra, cwd=start)
    s.wait_url()
    assert s.get("/").json() == {"cwd": chosen}, s.output()


@pytest.mark.skipif(os.geteuid() != 0, reason="Apache's children are another user only under root")
def test_serve_never_loosens_a_private_server_root(workspace, token):
    private = os.path.join(workspace.root, "private-root-" + token)
    os.mkdir(private)
    os.chmod(private, 0o700)
    code, out = _serve_fails([os.path.join(workspace.apps, "serve_cwd.py"), "--port",
                              harness.free_port(), "--server-root", str(private)])
    assert code == 2, out
    assert "must pass through it, and %s is drwx------ root:root" % private in out, out
    assert "chmod o+x" in out, out
    assert os.stat(private).st_mode & 0o777 == 0o700
    code, out = _serve_fails([os.path.join(workspace.apps, "serve_cwd.py"), "--setup-only",
                              str(private)])
    assert code == 2 and os.stat(private).st_mode & 0o777 == 0o700, out


def test_serve_failed_start_leaves_no_server_root(workspace, token, tmp_path):
    # Apache refuses this config (an include that is not Apache syntax).
    bad = tmp_path / "bad.conf"
    bad.write_text("ThisIsNotADirective on\n")
    tmpdir = _private_tmpdir(workspace, token)
    code, out = _serve_fails([os.path.join(workspace.apps, "serve_cwd.py"), "--port",
                              harness.free_port(), "--include-file", str(bad)], tmpdir=tmpdir)
    assert code == 1 and "ThisIsNotADirective" in out, out
    assert os.listdir(tmpdir) == [], out


def test_serve_django_project_directory_with_admin_static_and_sqlite(serve, workspace, token):
    # As root the children run as www-data: `pyhost serve mysite/` must be
    # recognised as Django, map STATIC_URL to STATIC_ROOT (filled by
    # --collectstatic) and name the SQLite file the children cannot write.
    project = os.path.join(workspace.root, "djadmin-" + token)
    shutil.copytree(os.path.join(workspace.apps, "djadmin"), project)
    harness._chmod_world_readable(project)
    s = serve(project, "--port", harness.free_port(), "--collectstatic")
    s.wait_url()
    r = s.get("/static/admin/css/base.css")
    assert r.status == 200, s.output()
    assert r.header("Content-Type", "").startswith("text/css")
    with open(os.path.join(project, "collected-static", "admin", "css", "base.css"), "rb") as f:
        assert r.body == f.read()
    assert s.get("/admin/login/").status == 200, s.output()
    if os.geteuid() == 0:
        assert "cannot write the SQLite database's directory %s" % project in s.output(), s.output()


def test_serve_django_directory_without_static_settings(serve, workspace):
    # djproj sets no STATIC_URL: nothing to map, nothing to warn about.
    s = serve(os.path.join(workspace.apps, "djproj"), "--port", harness.free_port())
    s.wait_url()
    assert s.get("/hello/").body == b"hello from django path=/hello/"
    assert "warning" not in s.output(), s.output()
    code, out = _serve_fails([os.path.join(workspace.apps, "djproj"), "--collectstatic",
                              "--port", harness.free_port()])
    assert code == 1 and "--collectstatic needs STATIC_ROOT" in out, out
    code, out = _serve_fails([os.path.join(workspace.apps, "serve_bad"),
                              "--port", harness.free_port()])
    assert code == 2 and "is a directory but not a Django project" in out, out


def _json(s, path, **kw):
    r = s.get(path, **kw)
    assert r.status == 200, (r.status, r.body, s.output())
    return r.json()


def test_serve_parity_options_in_one_server(serve, workspace, token, tmp_path):
    env_file = os.path.join(workspace.root, "env-" + token)
    with open(env_file, "w") as f:
        f.write("# comment\nexport PYHOST_TEST_APP_FROM_FILE='quoted value'\n\nPYHOST_TEST_APP_B=file\n")
    pid_file = os.path.join(workspace.root, "pid-" + token)
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(),
              "--mount-point", "/app/", "--env", "PYHOST_TEST_APP_A=1", "--env-file", env_file,
              "--env", "PYHOST_TEST_APP_B=cli", "--limit-request-body", "100",
              "--pid-file", pid_file, "--process-name", "pyhost-test-" + token,
              "--compress-responses", "--server-status", "--processes", "1")
    url = s.wait_url()
    assert url.endswith("/app/"), url
    got = _json(s, "/app/x")
    assert got["env"] == {"PYHOST_TEST_APP_A": "1", "PYHOST_TEST_APP_FROM_FILE": "quoted value",
                          "PYHOST_TEST_APP_B": "cli"}  # the command line after the file wins
    assert (got["script_name"], got["path_info"]) == ("/app", "/x")
    assert s.get("/other").status in (403, 404)  # Apache's, not the app's
    # --limit-request-body: Apache's 413 for more.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    r = harness.do_request(conn, "POST", "/app/", body=b"x" * 100)
    assert r.status == 200 and r.json()["length"] == 100
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    assert harness.do_request(conn, "POST", "/app/", body=b"x" * 101).status == 413
    # --compress-responses: gzip when asked for, identity otherwise.
    r = s.get("/app/big", headers={"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == "gzip" and len(r.body) < 10000
    import gzip
    assert gzip.decompress(r.body) == b"pyhost compresses text. " * 4000
    assert s.get("/app/big").header("Content-Encoding") is None
    # --server-status from this host; --pid-file; --process-name in ps.
    r = s.get("/server-status?auto")
    assert r.status == 200 and b"ServerUptimeSeconds" in r.body
    with open(pid_file) as f:
        apache_pid = int(f.read())
    assert apache_pid == s.proc.pid or processes_mentioning("pyhost-test-" + token)
    with open("/proc/%d/cmdline" % got["pid"], "rb") as f:
        assert f.read().split(b"\0")[0] == ("pyhost-test-" + token).encode()
    # The default access log format: combined plus the time taken.
    assert harness.wait_for(lambda: re.search(r'"GET /app/x HTTP/1.1" 200 \d+ "-" "[^"]*" \d+us',
                                              s.output()), timeout=5), s.output()


def test_serve_trust_proxy(serve, workspace):
    fwd = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
           "X-Forwarded-Host": "app.example", "X-Forwarded-Port": "443"}
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(),
              "--trust-proxy", "127.0.0.0/8")
    s.wait_url()
    got = _json(s, "/", headers=fwd)
    assert (got["remote_addr"], got["scheme"], got["host"], got["port"]) == (
        "203.0.113.9", "https", "app.example", "443"), got
    got = _json(s, "/")
    assert (got["remote_addr"], got["scheme"]) == ("127.0.0.1", "http")
    s.stop()
    # From an address that is not trusted the headers are ignored (and kept
    # from the app).
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(),
              "--trust-proxy", "192.0.2.1")
    s.wait_url()
    got = _json(s, "/", headers=fwd)
    assert (got["remote_addr"], got["scheme"], got["port"]) == ("127.0.0.1", "http", str(s.port)), got
    assert got["forwarded"] == [], got


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pyhost test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, cn, ext in (("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"),
                          ("client", "pyhost-client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                 "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)


def test_serve_tls_client_certificates_https_only_and_hsts(serve, workspace, token):
    d = os.path.join(workspace.root, "pki-" + token)
    os.mkdir(d)
    _make_pki(d)
    http_port, https_port = harness.free_port(), harness.free_port()
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", http_port,
              "--https-port", https_port, "--ssl-certificate-file", os.path.join(d, "server.pem"),
              "--ssl-certificate-key-file", os.path.join(d, "server.key"),
              "--ssl-ca-certificate-file", os.path.join(d, "ca.pem"), "--https-only", "--hsts")
    s.wait_url()
    r = s.get("/some/path?q=1")
    assert r.status == 301
    assert r.header("Location") == "https://127.0.0.1:%d/some/path?q=1" % https_port
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=ctx, timeout=10)
    r = harness.do_request(conn, "GET", "/")
    assert r.status == 200, s.output()
    got = r.json()
    assert got["scheme"] == "https" and "CN=pyhost-client" in got["client_dn"], got
    assert r.header("Strict-Transport-Security") == "max-age=31536000"
    # No client certificate: refused by mod_ssl.
    bare = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=bare, timeout=10)
        r = harness.do_request(conn, "GET", "/")
        assert r.status != 200  # TLS 1.3 may report the refusal at the first read instead
        raise ssl.SSLError("refused with %d" % r.status)


@pytest.mark.skipif(not os.access("/usr/bin/rotatelogs", os.X_OK), reason="needs rotatelogs")
def test_serve_rotate_logs(serve, workspace, token):
    d = os.path.join(workspace.root, "logs-" + token)
    os.mkdir(d)
    log = os.path.join(d, "access.log")
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(),
              "--access-log", log, "--rotate-logs", "--max-log-size", "1")
    s.wait_url()
    ua = "u" * 7000
    for i in range(180):  # ~1.3 MB of access log
        assert s.get("/", headers={"User-Agent": ua}).status == 200
    assert harness.wait_for(lambda: os.path.exists(log + ".1"), timeout=10), os.listdir(d)
    assert os.path.getsize(log + ".1") <= 1024 * 1024 + 10000


def test_serve_daemon_request_timeout_and_maximum_requests(serve, workspace, token):
    s = serve(os.path.join(workspace.apps, "slow_serve.py"), "--port", harness.free_port(),
              "--daemon", "--daemon-processes", "1", "--request-timeout", "1",
              "--maximum-requests", "3")
    s.wait_url()
    assert s.get("/?sleep=5&token=" + token).status == 504
    s.stop()
    s = serve(os.path.join(workspace.apps, "serve_env.py"), "--port", harness.free_port(),
              "--daemon", "--daemon-processes", "1", "--maximum-requests", "3")
    s.wait_url()
    pids = [_json(s, "/")["pid"] for _ in range(7)]
    assert len(set(pids)) >= 2, pids


def test_serve_options_from_the_environment(workspace, token):
    port = harness.free_port()
    env = dict(os.environ, PYHOST_PORT=str(port), PYHOST_MOUNT_POINT="/env",
               PYHOST_ENV="PYHOST_TEST_APP_X=1 'PYHOST_TEST_APP_Y=two words'",
               PYHOST_NO_ACCESS_LOG="yes", PYHOST_LOG_LEVEL="notice")
    s = Serve([os.path.join(workspace.apps, "serve_env.py"), "--log-level", "info"], env=env)
    try:
        s.wait_url()
        assert s.port == port and s.url.endswith("/env/")
        got = _json(s, "/env/")
        assert got["env"] == {"PYHOST_TEST_APP_X": "1", "PYHOST_TEST_APP_Y": "two words"}
        time.sleep(0.5)
        assert '"GET /env/' not in s.output()  # PYHOST_NO_ACCESS_LOG
        # --log-level on the command line wins over PYHOST_LOG_LEVEL.
        assert "LogLevel info" in open(os.path.join(re.search(r"config (\S+)\)", s.output()).group(1))).read()
    finally:
        s.stop()


def test_python_m_pyhost():
    p = subprocess.run([sys.executable, "-m", "pyhost", "--version"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("pyhost "), p


def _serve_on_a_terminal(args, env, token, workspace):
    """Runs pyhost serve with a pseudo-terminal as stdout/stderr, makes one
    request that fails in the app, stops it; returns what the terminal got."""
    import pty
    master, slave = pty.openpty()
    port = harness.free_port()
    proc = subprocess.Popen([PYHOST, "serve", os.path.join(workspace.apps, "bad.wsgi"),
                             "--port", str(port), *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    text = lambda: b"".join(chunks).decode("utf-8", "replace")
    try:
        assert harness.wait_for(lambda: "serving on" in text(), timeout=30), text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        harness.do_request(conn, "GET", "/raises?token=" + token)
        conn.close()
        assert harness.wait_for(lambda: "Traceback" in text(), timeout=10), text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        os.close(master)
    return text()


def test_serve_on_a_terminal_banner_and_compact_coloured_log(workspace, token):
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    out = _serve_on_a_terminal([], env, token, workspace)
    # The banner says what runs before Apache starts.
    assert re.search(r"pyhost \S+: \S+bad.wsgi \(WSGI, callable application\)", out), out
    assert "Python %d.%d" % sys.version_info[:2] in out and "event MPM, embedded: 1 process x 10 threads" in out
    assert "starting Apache" in out
    # Error-log entries: time, coloured level, pid, message; the traceback as lines.
    assert re.search(r"^\d\d:\d\d:\d\d \x1b\[31merror \x1b\[0m +\d+ PYH\d{4}", out, re.M), out
    assert re.search(r"^ +File \"[^\"]+bad.wsgi\", line \d+, in raises\r?$", out, re.M), out
    assert re.search(r"^ +RuntimeError: pyhost-test-boom-raises\r?$", out, re.M), out
    assert "[pid " not in out  # Apache's long form is not shown on a terminal


def test_serve_on_a_terminal_honours_no_color(workspace, token):
    out = _serve_on_a_terminal([], dict(os.environ, NO_COLOR="1"), token, workspace)
    assert "\x1b[" not in out, out
    assert re.search(r"^\d\d:\d\d:\d\d error +\d+ PYH\d{4}", out, re.M), out
