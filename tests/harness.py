"""Real-Apache test harness: renders an httpd.conf, runs apache2 in the
foreground on 127.0.0.1 and ephemeral ports, and talks HTTP to it.

Nothing here mocks Apache; every test goes through a real server. The module
under test is pyhost's mod_pyhost (found with pyhost.module_location()), or
any other module named by PYHOST_TEST_MODULE / PYHOST_TEST_MODULE_NAME, which
lets the suite be pointed at mod_wsgi to check the tests themselves.
"""

import atexit
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APPS_SRC = os.path.join(HERE, "apps")

MPMS = ("event", "worker", "prefork")
# Module message ids: every entry mod_pyhost writes carries one.
LOG_ID_RE = re.compile(os.environ.get("PYHOST_TEST_LOG_ID", r"PYH\d{4}"))
CRASH_RE = re.compile(r"Segmentation fault|exit signal|AH00052|core dumped|PYH0040: .* killed by signal (?:6|7|8|11)\b")

# scripts/sanitize.sh runs Apache with ASan preloaded (through the
# PYHOST_TEST_APACHE_ENV_* passthrough): RSS then holds ASan's quarantine of
# freed memory and its shadow pages, so growth measured by RSS says nothing.
UNDER_ASAN = bool(os.environ.get("PYHOST_TEST_APACHE_ENV_ASAN_OPTIONS"))

# Every Apache this process created, in order, for the failure report.
ALL_SERVERS = []


def _stop_leftovers():
    # A test run that dies between start and its fixture's teardown must not
    # leave our Apaches behind: stop each one we started, by its pid.
    for srv in ALL_SERVERS:
        if srv.running():
            srv.stop(timeout=10)


atexit.register(_stop_leftovers)


def find_apache():
    for candidate in (os.environ.get("PYHOST_TEST_HTTPD"), "/usr/sbin/apache2",
                      "/usr/sbin/httpd", shutil.which("apache2"), shutil.which("httpd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no apache2/httpd binary found (set PYHOST_TEST_HTTPD)")


def apache_modules_dir():
    for d in (os.environ.get("PYHOST_TEST_MODULES_DIR"), "/usr/lib/apache2/modules",
              "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules", "/usr/libexec/apache2"):
        if d and os.path.isfile(os.path.join(d, "mod_mpm_event.so")):
            return d
    raise RuntimeError("no Apache modules directory with mod_mpm_event.so found")


# PYHOST_TEST_APACHE_ENV_<NAME>=value sets <NAME>=value in the environment of
# the Apaches the harness starts (and so of their children and daemons), and
# nowhere else: scripts/sanitize.sh preloads the ASan runtime into Apache with
# it without also preloading it into pytest and every tool pytest runs.
APACHE_ENV_PREFIX = "PYHOST_TEST_APACHE_ENV_"


def apache_env():
    """The environment for an apache2 process: ours plus the passthroughs."""
    env = dict(os.environ)
    for key, value in os.environ.items():
        if key.startswith(APACHE_ENV_PREFIX) and len(key) > len(APACHE_ENV_PREFIX):
            env[key[len(APACHE_ENV_PREFIX):]] = value
    return env


def module_under_test():
    """(module_name, path) for the LoadModule line of the module under test."""
    path = os.environ.get("PYHOST_TEST_MODULE")
    if path:
        return os.environ.get("PYHOST_TEST_MODULE_NAME", "pyhost_module"), path
    import pyhost  # noqa: the installed package, not the source tree
    return "pyhost_module", pyhost.module_location()


def run_user():
    """User/Group lines: Debian's apache2 refuses to run children as root."""
    if os.geteuid() != 0:
        return ""
    for name in ("www-data", "apache", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        import grp
        return "User %s\nGroup %s\n" % (name, grp.getgrgid(pw.pw_gid).gr_name)
    raise RuntimeError("running as root but no unprivileged user to run children as")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chmod_world_readable(path):
    for root, dirs, files in os.walk(path):
        os.chmod(root, os.stat(root).st_mode | 0o755)
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, os.stat(p).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


class Workspace:
    """A world-readable temp tree the Apache children (www-data) can read:
    apps/ (a copy of tests/apps with @PLACEHOLDERS@ filled in), state/ (writable
    by the children, for markers), data/ (files served by file_wrapper tests)
    and one directory per server for conf, logs and runtime files."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="pyhost-test-", dir="/tmp")
        os.chmod(self.root, 0o755)
        self.apps = os.path.join(self.root, "apps")
        self.state = os.path.join(self.root, "state")
        self.data = os.path.join(self.root, "data")
        self.docroot = os.path.join(self.root, "htdocs")
        os.makedirs(self.state)
        os.chmod(self.state, 0o777)
        os.makedirs(self.data)
        os.makedirs(self.docroot)
        with open(os.path.join(self.docroot, "ping.txt"), "w") as f:
            f.write("pong\n")
        # 300 KiB of non-repeating-ish bytes: larger than one socket buffer and
        # than Apache's 8 KiB brigade chunks, so partial sends would show.
        self.data_file = os.path.join(self.data, "blob.bin")
        with open(self.data_file, "wb") as f:
            f.write(self.blob_bytes())
        self._copy_apps()
        _chmod_world_readable(self.root)
        os.chmod(self.state, 0o777)

    @staticmethod
    def blob_bytes():
        return b"".join(i.to_bytes(4, "big") for i in range(300 * 256))

    def substitutions(self):
        return {
            "@STATE_DIR@": self.state,
            "@APPS_DIR@": self.apps,
            "@DATA_FILE@": self.data_file,
        }

    def _copy_apps(self):
        shutil.copytree(APPS_SRC, self.apps, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subs = self.substitutions()
        for root, _dirs, files in os.walk(self.apps):
            for name in files:
                if not name.endswith((".wsgi", ".py", ".pth", ".txt")):
                    continue
                p = os.path.join(root, name)
                with open(p, encoding="utf-8") as f:
                    text = f.read()
                new = text
                for k, v in subs.items():
                    new = new.replace(k, v)
                if new != text:
                    with open(p, "w", encoding="utf-8") as f:
                        f.write(new)

    def state_path(self, name):
        return os.path.join(self.state, name)

    def cleanup(self):
        if os.environ.get("PYHOST_TEST_KEEP"):
            sys.stderr.write("pyhost tests: keeping %s\n" % self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)


CONFIG_TEMPLATE = """\
ServerRoot "{server_root}"
ServerName 127.0.0.1
{listens}
PidFile {run}/httpd.pid
DefaultRuntimeDir {run}
Mutex file:{run} default
ErrorLog {logs}/error.log
LogLevel info
LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed
CustomLog {logs}/access.log timed
{user}
LoadModule mpm_{mpm}_module {moddir}/mod_mpm_{mpm}.so
{std_modules}
LoadModule {module_name} {module_path}
TypesConfig /etc/mime.types
Timeout 20
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0
GracefulShutdownTimeout 5
{mpm_conf}
DocumentRoot "{docroot}"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{work}">
    AllowOverride None
    Require all granted
</Directory>
{extra}
"""

STD_MODULES = ("authz_core", "authz_host", "mime", "log_config", "unixd", "alias",
               "env", "headers", "dir", "setenvif")


def std_module_lines(moddir):
    # Some builds compile a few of these in (Debian: log_config, unixd...):
    # loading those again is an error, hence the IfModule guards.
    return "\n".join(
        "<IfModule !{0}_module>\n    LoadModule {0}_module {1}/mod_{0}.so\n</IfModule>"
        .format(m, moddir) for m in STD_MODULES)


# ServerLimit is well above MaxRequestWorkers/ThreadsPerChild so that after a
# graceful restart the old generation's slots do not block the new one.
MPM_CONF = {
    "event": """\
StartServers 2
ServerLimit 16
ThreadLimit 4
ThreadsPerChild 4
MinSpareThreads 4
MaxSpareThreads 12
MaxRequestWorkers 16
MaxConnectionsPerChild 0""",
    "worker": """\
StartServers 2
ServerLimit 16
ThreadLimit 4
ThreadsPerChild 4
MinSpareThreads 4
MaxSpareThreads 12
MaxRequestWorkers 16
MaxConnectionsPerChild 0""",
    "prefork": """\
StartServers 2
MinSpareServers 2
MaxSpareServers 4
ServerLimit 16
MaxRequestWorkers 8
MaxConnectionsPerChild 0""",
}


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %r %r>" % (self.status, self.headers, self.body[:300])


class RawResponse:
    """A response read off a raw socket, parsed leniently: a cut connection
    leaves complete=False instead of raising."""

    def __init__(self, data):
        self.raw = data
        self.status = None
        self.headers = []
        self.body = b""
        self.complete = False
        self.interim = []  # 1xx status lines seen before the final response
        self._parse()

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def _parse(self):
        data = self.raw
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = data[:end], data[end + 4:]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                return
            if 100 <= status < 200:
                self.interim.append(lines[0].decode("latin-1"))
                continue
            self.status = status
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                self.headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
            break
        te = (self.header("Transfer-Encoding") or "").lower()
        cl = self.header("Content-Length")
        if "chunked" in te:
            body = b""
            while True:
                nl = data.find(b"\r\n")
                if nl < 0:
                    break
                try:
                    size = int(data[:nl].split(b";")[0], 16)
                except ValueError:
                    break
                if size == 0:
                    # "0" CRLF, optional trailers, CRLF
                    self.complete = b"\r\n\r\n" in data[nl:]
                    break
                chunk = data[nl + 2:nl + 2 + size]
                body += chunk
                if len(chunk) < size or data[nl + 2 + size:nl + 4 + size] != b"\r\n":
                    break
                data = data[nl + 4 + size:]
            self.body = body
        elif cl is not None:
            self.body = data[:int(cl)]
            self.complete = len(data) >= int(cl)
        else:
            self.body = data
            self.complete = True  # delimited by close; cannot tell a cut

    def __repr__(self):
        return "<RawResponse %s complete=%s %r>" % (self.status, self.complete, self.raw[:400])


class ServerFailedToStart(RuntimeError):
    pass


class Apache:
    """One Apache httpd run in the foreground with a generated config."""

    def __init__(self, workspace, name, mpm="event", extra="", ports=1, module=None,
                 python_home=None, python_directives=True):
        self.ws = workspace
        self.name = name
        self.mpm = mpm
        self.extra = extra
        self.nports = ports
        self.module = module or module_under_test()
        self.python_home = python_home if python_home is not None else sys.prefix
        self.python_directives = python_directives
        self.dir = os.path.join(workspace.root, "srv-" + name)
        self.logs = os.path.join(self.dir, "logs")
        self.run = os.path.join(self.dir, "run")
        for d in (self.dir, self.logs, self.run):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        os.chmod(self.run, 0o777)
        self.conf_path = os.path.join(self.dir, "httpd.conf")
        self.error_log_path = os.path.join(self.logs, "error.log")
        self.proc = None
        self.ports = []
        self.started_at = None
        ALL_SERVERS.append(self)

    # -- config ----------------------------------------------------------
    @property
    def port(self):
        return self.ports[0]

    def render(self, ports):
        # @TOKEN@ substitution, not str.format: Apache configs are full of
        # %{...} braces.
        subs = {
            "@PORT@": str(ports[0]),
            "@WORK@": self.ws.root,
            "@APPS@": self.ws.apps,
            "@STATE@": self.ws.state,
            "@DATA@": self.ws.data,
        }
        for i, p in enumerate(ports):
            subs["@PORT%d@" % i] = str(p)
        extra = self.extra or ""
        for k, v in subs.items():
            extra = extra.replace(k, v)
        if self.python_directives and self.python_home:
            extra = "WSGIPythonHome %s\n" % self.python_home + extra
        return CONFIG_TEMPLATE.format(
            server_root=self.dir,
            listens="\n".join("Listen 127.0.0.1:%d" % p for p in ports),
            run=self.run,
            logs=self.logs,
            user=run_user(),
            mpm=self.mpm,
            moddir=apache_modules_dir(),
            std_modules=std_module_lines(apache_modules_dir()),
            module_name=self.module[0],
            module_path=self.module[1],
            mpm_conf=MPM_CONF[self.mpm],
            docroot=self.ws.docroot,
            work=self.ws.root,
            extra=extra,
        )

    def write_config(self, ports=None):
        ports = ports or [free_port() for _ in range(self.nports)]
        with open(self.conf_path, "w") as f:
            f.write(self.render(ports))
        return ports

    def config_test(self):
        """apache2 -t on the rendered config: (returncode, combined output)."""
        self.write_config()
        p = subprocess.run([find_apache(), "-t", "-f", self.conf_path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           env=apache_env())
        return p.returncode, p.stdout.decode("utf-8", "replace")

    # -- lifecycle -------------------------------------------------------
    def start(self, wait=True, timeout=30.0):
        last_err = None
        for _attempt in range(4):
            ports = self.write_config()
            log_offset = self._log_size()
            self.proc = subprocess.Popen(
                [find_apache(), "-f", self.conf_path, "-DFOREGROUND"],
                stdout=open(os.path.join(self.logs, "stdout.log"), "ab"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=apache_env(),
            )
            self.ports = ports
            self.started_at = time.time()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except ServerFailedToStart as e:
                last_err = e
                text = self.error_log()[log_offset:] + self._stdout_log()
                if self.proc.poll() is not None and re.search(
                        r"Address already in use|could not bind", text):
                    continue  # lost the port race: new ports, try again
                self.stop()
                raise
        raise last_err

    def _stdout_log(self):
        try:
            with open(os.path.join(self.logs, "stdout.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailedToStart(
                    "apache exited with %s\n--- stdout/stderr ---\n%s\n--- error log ---\n%s"
                    % (self.proc.returncode, self._stdout_log(), self.error_log()[-5000:]))
            try:
                r = self.request("GET", "/ping.txt", timeout=2)
                if r.status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise ServerFailedToStart("apache did not answer within %.0fs\n%s"
                                  % (timeout, self.error_log()[-5000:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def open_connections(self):
        """Server-side TCP sockets on this Apache's ports that are neither
        listening nor in TIME_WAIT (their descriptor is closed), from
        /proc/net/tcp and tcp6: connections Apache still works on."""
        ports = {"%04X" % p for p in self.ports}
        found = []
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(name) as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local, state = fields[1], fields[3]
                if local.rsplit(":", 1)[1] in ports and state not in ("0A", "06"):
                    found.append((local, fields[2], state))
        return found

    def quiesce(self, timeout=5.0):
        """Wait (bounded) until Apache has finished with every connection.

        mod_mpm_event's immediate stop (SIGTERM) closes the sockets its worker
        threads hold through a table the workers clear only after they are
        done with a connection, whose memory they free first; a worker
        finishing a connection (one a client just closed) at that moment
        makes the child dereference freed memory and die with SIGSEGV (an
        Apache bug, reproduced without pyhost by tests/event_stop_repro.py;
        test_stop.py fails without this wait). Clients
        here close their connections before a stop, so once no server-side
        socket is left (checked twice, a little apart) no worker is ending
        one. Returns True if that point was reached."""
        deadline = time.time() + timeout
        quiet = 0
        while time.time() < deadline:
            quiet = quiet + 1 if not self.open_connections() else 0
            if quiet >= 2:
                return True
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=20.0, quiesce=True):
        """Stop the Apache we started (by its pid); returns its exit code.
        Before an immediate stop (SIGTERM), waits until Apache is done with
        the connections its clients closed (see quiesce)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if sig == signal.SIGTERM and quiesce:
                self.quiesce()
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Our own process group only (start_new_session above).
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        return self.proc.returncode

    def graceful_restart(self, timeout=30.0):
        """SIGUSR1, then wait until the new generation answers."""
        before = self.error_log().count("resuming normal operations")
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailedToStart("apache exited during graceful restart:\n"
                                          + self.error_log()[-5000:])
            if self.error_log().count("resuming normal operations") > before:
                break
            time.sleep(0.1)
        else:
            raise ServerFailedToStart("no 'resuming normal operations' after SIGUSR1")
        self.wait_ready(timeout)

    # -- logs ------------------------------------------------------------
    def _log_size(self):
        try:
            return os.path.getsize(self.error_log_path)
        except OSError:
            return 0

    def error_log(self):
        try:
            with open(self.error_log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_mark(self):
        return len(self.error_log())

    def log_since(self, mark):
        return self.error_log()[mark:]

    def log_entries_since(self, mark):
        """Lines since mark that carry a module message id (PYHnnnn)."""
        return [l for l in self.log_since(mark).splitlines() if LOG_ID_RE.search(l)]

    def request_entries_since(self, mark, startup_ids=("PYH0012", "PYH0205", "PYH0206", "PYH0222")):
        """The id'd entries since mark without those a child logs as it
        starts (a prefork child started mid-test loads the ASGI mounts for
        their lifespan, and a broken one says so again): an entry with one
        of startup_ids counts only when a request logged it (Apache adds the
        peer, "[remote ...]" or "[client ...]")."""
        return [l for l in self.log_entries_since(mark)
                if "[remote " in l or "[client " in l
                or not any(i in l for i in startup_ids)]

    def wait_log_entries(self, mark, count=1, timeout=5.0, settle=0.3):
        """Wait (bounded) until at least count id'd entries appeared, then a
        little longer so that extra entries would be seen too."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.log_entries_since(mark)) >= count:
                break
            time.sleep(0.05)
        time.sleep(settle)
        return self.log_entries_since(mark)

    def wait_log_text(self, mark, pattern, timeout=5.0):
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while time.time() < deadline:
            text = self.log_since(mark)
            if rx.search(text):
                return text
            time.sleep(0.05)
        return self.log_since(mark)

    # -- requests --------------------------------------------------------
    def connection(self, timeout=15.0, port=None):
        return http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=15.0, port=None,
                encode_chunked=False):
        conn = self.connection(timeout, port)
        try:
            return do_request(conn, method, path, body, headers, encode_chunked)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def open_socket(self, timeout=10.0, port=None):
        s = socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout)
        return s

    def raw(self, data, timeout=10.0, port=None):
        """Send raw bytes, read until the server closes (or timeout)."""
        with self.open_socket(timeout, port) as s:
            s.sendall(data)
            return RawResponse(read_until_close(s, timeout))


def do_request(conn, method, path, body=None, headers=None, encode_chunked=False):
    conn.request(method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked)
    r = conn.getresponse()
    data = r.read()
    return Response(r.status, r.reason, r.getheaders(), data)


def dechunk(data):
    """A whole chunked body (with its last chunk) decoded; AssertionError
    when it is cut. Linear in the body's size (bodies of many MiB)."""
    out, pos = [], 0
    while True:
        end = data.find(b"\r\n", pos)
        assert end >= 0, "cut in a chunk size"
        n = int(data[pos:end].split(b";")[0], 16)
        if n == 0:
            return b"".join(out)
        start = end + 2
        assert len(data) >= start + n + 2, "cut in a chunk"
        out.append(data[start:start + n])
        pos = start + n + 2


def read_until_close(sock, timeout=10.0):
    deadline = time.time() + timeout
    chunks = []
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def read_until(sock, needle, timeout=5.0):
    """Read until needle is in the data; returns (data, found)."""
    deadline = time.time() + timeout
    data = b""
    while needle not in data and time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        data += b
    return data, needle in data


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    return predicate()


# Every scenario app mounted in one server, so the suite needs only one
# long-lived Apache per MPM. Per-<Location> directives where a scenario needs
# its own dir-config. @APPS@/@STATE@/@PORTn@ are filled in by Apache.render.
SCENARIO_CONF = r"""
WSGIPythonPath @APPS@/pylib1:@APPS@/pylib2
WSGIImportScript @APPS@/preload.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}

<Directory "@STATE@">
    Require all granted
</Directory>

WSGIScriptAlias /env @APPS@/env.wsgi
WSGIScriptAlias /input @APPS@/input.wsgi
WSGIScriptAlias /chunked @APPS@/input.wsgi
<Location /chunked>
    WSGIChunkedRequest On
</Location>
WSGIScriptAlias /noread @APPS@/noread.wsgi
WSGIScriptAlias /limited @APPS@/input.wsgi
<Location /limited>
    LimitRequestBody 1000
    WSGIChunkedRequest On
</Location>
WSGIScriptAlias /out @APPS@/output.wsgi
WSGIScriptAlias /bad @APPS@/bad.wsgi
WSGIScriptAlias /badsub @APPS@/bad.wsgi application-group=alpha
WSGIScriptAlias /errors @APPS@/errors.wsgi

WSGIScriptAlias /callable/default @APPS@/callable.wsgi
WSGIScriptAlias /callable/inline @APPS@/callable.wsgi callable-object=other
WSGIScriptAlias /callable/dir @APPS@/callable.wsgi
<Location /callable/dir>
    WSGICallableObject other
</Location>

WSGIScriptAlias /grp/global @APPS@/groups.wsgi
WSGIScriptAlias /grp/global2 @APPS@/groups2.wsgi application-group=%{GLOBAL}
WSGIScriptAlias /grp/alpha1 @APPS@/groups.wsgi application-group=alpha
WSGIScriptAlias /grp/alpha2 @APPS@/groups2.wsgi application-group=alpha
WSGIScriptAlias /grp/beta @APPS@/groups.wsgi application-group=beta
WSGIScriptAlias /grp/server @APPS@/groups.wsgi application-group=%{SERVER}
WSGIScriptAlias /grp/resource @APPS@/groups.wsgi application-group=%{RESOURCE}
WSGIScriptAlias /grp/envvar @APPS@/groups2.wsgi
<Location /grp/envvar>
    SetEnv PYHOST_TEST_GROUP alpha
    WSGIApplicationGroup %{ENV:PYHOST_TEST_GROUP}
</Location>
WSGIScriptAlias /grp/dirbeta @APPS@/groups2.wsgi
<Location /grp/dirbeta>
    WSGIApplicationGroup beta
</Location>

WSGIScriptAliasMatch ^/match/([a-z]+) @APPS@/match_$1.wsgi

WSGIScriptAlias /auth/off @APPS@/env.wsgi
WSGIScriptAlias /auth/inline @APPS@/env.wsgi pass-authorization=On
WSGIScriptAlias /auth/dir @APPS@/env.wsgi
<Location /auth/dir>
    WSGIPassAuthorization On
</Location>

WSGIScriptAlias /preload @APPS@/preload_check.wsgi application-group=%{GLOBAL}
WSGIScriptAlias /pypath @APPS@/pypath.wsgi

WSGIScriptAlias /reload/on @STATE@/reload_on.wsgi
WSGIScriptAlias /reload/broken @STATE@/reload_broken.wsgi
WSGIScriptAlias /missing @APPS@/does-not-exist.wsgi
WSGIScriptAlias /import-raises @APPS@/import_raises.wsgi
WSGIScriptAlias /no-callable @APPS@/no_callable.wsgi
WSGIScriptAlias /callable/notcallable @APPS@/no_callable.wsgi callable-object=application_not_callable
WSGIScriptAlias /printer @APPS@/printer.wsgi
WSGIScriptAlias /stash @APPS@/stash.wsgi
WSGIScriptAlias /reload/off @STATE@/reload_off.wsgi
<Location /reload/off>
    WSGIScriptReloading Off
</Location>

WSGIScriptAlias /head/on @APPS@/method.wsgi
<Location /head/on>
    WSGIMapHEADToGET On
</Location>
WSGIScriptAlias /head/off @APPS@/method.wsgi
<Location /head/off>
    WSGIMapHEADToGET Off
</Location>
WSGIScriptAlias /head/auto @APPS@/method.wsgi
<Location /head/auto>
    WSGIMapHEADToGET Auto
</Location>
WSGIScriptAlias /head/autofilter @APPS@/method.wsgi
<Location /head/autofilter>
    WSGIMapHEADToGET Auto
    Header set X-Output-Filter yes
</Location>

WSGIScriptAlias /eo/on @APPS@/status.wsgi
<Location /eo/on>
    WSGIErrorOverride On
    ErrorDocument 404 "pyhost-custom-404"
</Location>
WSGIScriptAlias /eo/off @APPS@/status.wsgi
<Location /eo/off>
    WSGIErrorOverride Off
    ErrorDocument 404 "pyhost-custom-404"
</Location>

Alias /handler/ @APPS@/handler/
<Directory "@APPS@/handler">
    Options ExecCGI
    SetHandler wsgi-script
</Directory>
Alias /noexec/ @APPS@/noexec/
<Directory "@APPS@/noexec">
    Options None
    SetHandler wsgi-script
</Directory>
Alias /addhandler/ @APPS@/addhandler/
<Directory "@APPS@/addhandler">
    Options ExecCGI
    AddHandler wsgi-script .wsgi
</Directory>

WSGIScriptAlias /validated @APPS@/validated.wsgi
WSGIScriptAlias /flask @APPS@/flask_app.wsgi
<Location /flask>
    WSGIChunkedRequest On
</Location>
WSGIScriptAlias /django @APPS@/django_app.wsgi

# The second port (the template Listens on all ports) gets a virtual host
# that mounts an app at /: SCRIPT_NAME is ''.
<VirtualHost 127.0.0.1:@PORT1@>
    ServerName rootmount.test
    WSGIScriptAlias / @APPS@/env.wsgi
</VirtualHost>
"""


def prepare_scenario_state(ws):
    """Scripts the tests rewrite live in state/, not apps/."""
    with open(os.path.join(ws.apps, "reload_template.wsgi")) as f:
        text = f.read()
    for name in ("reload_on.wsgi", "reload_off.wsgi", "reload_broken.wsgi"):
        p = ws.state_path(name)
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o666)


def scenario_server(ws, mpm):
    prepare_scenario_state(ws)
    return Apache(ws, "scenarios-" + mpm, mpm=mpm, extra=SCENARIO_CONF, ports=2)


# ---- TLS and HTTP/2 (tests/test_http2.py) ------------------------------------

def tls_certificate(ws, name="localhost"):
    """A self-signed certificate and key made with `openssl req` into the
    workspace (once per workspace): (cert_path, key_path), world-readable so
    that a config test or a child could read them too."""
    cert = os.path.join(ws.root, "tls-%s.crt" % name)
    key = os.path.join(ws.root, "tls-%s.key" % name)
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=%s" % name, "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % name,
             "-keyout", key, "-out", cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        for p in (cert, key):
            os.chmod(p, 0o644)
    return cert, key


def http2_conf(cert, key, tls_port="@PORT1@"):
    """Config text that loads mod_ssl and mod_http2, offers h2c (cleartext,
    upgrade or prior knowledge) on every port and h2 over TLS on tls_port,
    whose <VirtualHost> serves the same URL space (it inherits the server's
    mounts). Port 0 stays plain HTTP/1.1-capable, so wait_ready still works."""
    moddir = apache_modules_dir()
    loads = "\n".join(
        "<IfModule !{0}_module>\n    LoadModule {0}_module {1}/mod_{0}.so\n</IfModule>"
        .format(m, moddir) for m in ("socache_shmcb", "ssl", "http2"))
    return """\
{loads}
SSLSessionCache none
Protocols h2c http/1.1
H2Direct on
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    Protocols h2 http/1.1
</VirtualHost>
""".format(loads=loads, port=tls_port, cert=cert, key=key)
