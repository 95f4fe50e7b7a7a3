"""docker/: the image builds, serves and stops promptly; the compose dev
service serves a bind-mounted app, and the asgi service the ASGI example
(HTTP and a WebSocket echo); the scale-out profile loses no request when a
replica is killed, once the balancer has noticed.

Everything runs against a private dockerd this module starts (vfs storage, no
bridge, no iptables; its own data root, exec root and socket in a temp dir)
and stops again by pid. No registry is needed: the base image named in the
Dockerfile, debian:bookworm-slim, is made with debootstrap from the apt
mirror this machine is configured with and imported under that name, so the
Dockerfile is the one users build. The rootfs tarball is cached in
/var/cache/pyhost-docker (PYHOST_DOCKER_CACHE) between runs.

Containers use the host's network and listen on 127.0.0.1 and free ports:
the compose file the tests run is docker/docker-compose.yml as
`docker-compose config` resolves it, with ports swapped for host networking.
Needs root and `scripts/install-deps.sh --test` (docker.io, docker-compose,
debootstrap); skipped, with the reason, only when dockerd cannot start.
"""

import asyncio
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import harness

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "docker", "Dockerfile")
COMPOSE_FILE = os.path.join(REPO, "docker", "docker-compose.yml")
APT_SOURCES = os.path.join(REPO, "scripts", "apt_sources.py")

# docker.io's client: /usr/local/bin/docker may be a newer one without buildx.
DOCKER = "/usr/bin/docker"
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
DEBOOTSTRAP = shutil.which("debootstrap") or "/usr/sbin/debootstrap"

BASE_IMAGE = "debian:bookworm-slim"  # the Dockerfile's FROM
IMAGE = "pyhost:latest"  # the compose file's image
SUITE = "bookworm"
CACHE_DIR = os.environ.get("PYHOST_DOCKER_CACHE", "/var/cache/pyhost-docker")
ROOTFS_TAR = "debian-%s-minbase.tar" % SUITE

DOCKERD_START_TIMEOUT = 60
BUILD_TIMEOUT = 900
UP_TIMEOUT = 180

# The kill test's load: bounded in count and in time.
LOAD_WORKERS = 4
LOAD_MAX_REQUESTS = 20000
LOAD_MAX_SECONDS = 30.0
KILL_AFTER_SECONDS = 2.0  # of load before the kill
LOAD_AFTER_NOTICED = 3.0  # seconds of load after the balancer noticed
NOTICE_TIMEOUT = 10.0  # the balancer must notice within this after the kill


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


class DockerUnavailable(Exception):
    pass


class PrivateDockerd:
    """A dockerd of our own: data root, exec root and socket under root."""

    def __init__(self, root):
        self.root = root
        self.data_root = os.path.join(root, "data")
        self.exec_root = os.path.join(root, "exec")
        self.sock = os.path.join(root, "docker.sock")
        self.log_path = os.path.join(root, "dockerd.log")
        self.proc = None
        config = os.path.join(root, "client-config")  # not the user's ~/.docker
        os.makedirs(config)
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock, DOCKER_CONFIG=config,
                        DOCKER_BUILDKIT="1")
        self.env.pop("DOCKER_CONTEXT", None)

    def start(self):
        for path in (DOCKER, DOCKERD):
            if not os.access(path, os.X_OK):
                raise DockerUnavailable("%s not found: run scripts/install-deps.sh --test" % path)
        if os.geteuid() != 0:
            raise DockerUnavailable("dockerd needs root (running as uid %d)" % os.geteuid())
        self.proc = subprocess.Popen(
            [DOCKERD, "--storage-driver=vfs", "--bridge=none", "--iptables=false",
             "--ip-masq=false", "--data-root", self.data_root, "--exec-root", self.exec_root,
             "-H", "unix://" + self.sock, "--pidfile", os.path.join(self.root, "dockerd.pid")],
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerUnavailable("dockerd exited with %s:\n%s"
                                        % (self.proc.returncode, tail(self.log())))
            if os.path.exists(self.sock):
                p = self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
                if p.returncode == 0:
                    return
            time.sleep(0.25)
        self.stop()
        raise DockerUnavailable("dockerd did not answer within %ds:\n%s"
                                % (DOCKERD_START_TIMEOUT, tail(self.log())))

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def run(self, argv, check=True, timeout=120, input=None):
        p = subprocess.run(argv, env=self.env, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        p.text = p.stdout.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise AssertionError("%s exited with %d:\n%s"
                                 % (" ".join(argv[:4]), p.returncode, tail(p.text, 80)))
        return p

    def docker(self, *args, **kw):
        return self.run([DOCKER, *args], **kw)

    def stop(self):
        """Stop our dockerd by pid (it stops its containers and its
        containerd), then anything it left behind that is provably ours."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # containerd and shims that name our exec root on their command line.
        for pid in _pids_with_arg(self.exec_root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # dockerd bind-mounts its data root and network namespaces under root.
        for mnt in sorted(_mounts_under(self.root), key=len, reverse=True):
            subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)


def _pids_with_arg(needle):
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if any(needle in a for a in args):
            pids.append(int(cmdline.split("/")[2]))
    return [p for p in pids if p != os.getpid()]


def _mounts_under(root):
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root + "/"):
                found.append(mnt)
    return found


def debian_mirror(suite=SUITE, root="/"):
    """The URI this machine's apt uses for suite's main component (one-line
    and deb822 sources), or None to let debootstrap pick its default. The
    parser is scripts/apt_sources.py, which scripts/debian-lib.sh uses too."""
    p = subprocess.run([sys.executable, APT_SOURCES, "--suite", suite, "--root", root],
                       stdout=subprocess.PIPE, check=True, timeout=60)
    return p.stdout.decode().strip() or None


def test_apt_sources_parser(tmp_path):
    # No dockerd needed: the mirror lookup debootstrap and the sid scripts
    # rely on, on one-line and deb822 sources written here.
    d = tmp_path / "etc" / "apt" / "sources.list.d"
    d.mkdir(parents=True)
    (tmp_path / "etc" / "apt" / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security bookworm-security main\n"
        "deb http://contrib.example/debian bookworm contrib\n")
    (d / "a-third-party.list").write_text("deb http://vendor.example/apt nodistro main\n")
    (d / "b-debian.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
        "Components: main\nEnabled: no\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\n\n"
        "Types: deb\nURIs: http://sid.example/debian\nSuites: sid\nComponents: main\n")
    root = str(tmp_path)
    assert debian_mirror("bookworm", root) == "http://mirror.example/debian"
    assert debian_mirror("bookworm-security", root) == "http://sec.example/debian-security"
    assert debian_mirror("sid", root) == "http://sid.example/debian"
    assert debian_mirror("trixie", root) is None
    # debian-lib.sh's debian_mirror (no suite): the first source for a
    # Debian release, neither -security nor a third party's.
    lib = os.path.join(REPO, "scripts", "debian-lib.sh")
    p = subprocess.run(["bash", "-c", '. "$1"; debian_mirror --root "$2"', "-", lib, root],
                       stdout=subprocess.PIPE, check=True, timeout=60)
    assert p.stdout.decode() == "http://mirror.example/debian\n"


def base_rootfs_tar(workdir):
    """Path of a minbase rootfs tarball: the cached one, or a new one (cached
    when the cache directory is writable)."""
    cached = os.path.join(CACHE_DIR, ROOTFS_TAR)
    if os.path.isfile(cached):
        return cached
    if not os.access(DEBOOTSTRAP, os.X_OK):
        raise AssertionError("%s not found: run scripts/install-deps.sh --test" % DEBOOTSTRAP)
    rootfs = os.path.join(workdir, "rootfs")
    mirror = debian_mirror()
    p = subprocess.run([DEBOOTSTRAP, "--variant=minbase", SUITE, rootfs] + ([mirror] if mirror else []),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert p.returncode == 0, "debootstrap failed:\n" + tail(p.stdout.decode("utf-8", "replace"))
    # As in the slim images: no package lists or downloaded .debs.
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
        for path in glob.glob(os.path.join(rootfs, pattern)):
            if os.path.isfile(path):
                os.unlink(path)
    try:
        os.makedirs(CACHE_DIR, exist_ok=True)
        target = cached
    except OSError:
        target = os.path.join(workdir, ROOTFS_TAR)
    partial = target + ".partial.%d" % os.getpid()
    subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", partial, "."], check=True)
    os.replace(partial, target)
    shutil.rmtree(rootfs)
    return target


def pip_ca_bundle():
    """The CA bundle pip trusts here, handed to the build as a secret so pip
    works behind a TLS-inspecting proxy too."""
    for path in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if path and os.path.isfile(path):
            return path
    return None


# -- HTTP ----------------------------------------------------------------

def http_get(port, path="/", timeout=5.0):
    """(status, headers dict, body) over a fresh connection to 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_http(port, path="/", timeout=60.0, want=b"Hello, world!\n"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, headers, body = http_get(port, path, timeout=2)
            last = (status, body[:200])
            if status == 200 and (want is None or body == want):
                return headers, body
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError("127.0.0.1:%d%s never answered 200 %r within %ds; last: %r"
                         % (port, path, want, timeout, last))


# -- fixtures ------------------------------------------------------------

@pytest.fixture(scope="module")
def dockerd():
    root = tempfile.mkdtemp(prefix="pyhost-docker-")
    daemon = PrivateDockerd(root)
    try:
        daemon.start()
    except DockerUnavailable as e:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip("docker tests skipped: cannot start a private dockerd: %s" % e)
    try:
        yield daemon
    finally:
        daemon.stop()
        if _mounts_under(root):
            sys.stderr.write("test_docker: mounts left under %s; not removing it\n" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image(dockerd):
    """Import the base image, then build docker/Dockerfile as a user would."""
    t0 = time.monotonic()
    tar = base_rootfs_tar(dockerd.root)
    with open(tar, "rb") as f:
        p = subprocess.run([DOCKER, "import", "-", BASE_IMAGE], env=dockerd.env, stdin=f,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert p.returncode == 0, "docker import failed:\n" + p.stdout.decode("utf-8", "replace")
    t1 = time.monotonic()
    argv = [DOCKER, "build", "--network", "host", "--progress", "plain",
            "-f", DOCKERFILE, "-t", IMAGE]
    ca = pip_ca_bundle()
    if ca:
        argv += ["--secret", "id=ca-certificates,src=" + ca]
    dockerd.run(argv + [REPO], timeout=BUILD_TIMEOUT)
    sys.stderr.write("test_docker: base image %.0fs, build %.0fs\n" % (t1 - t0, time.monotonic() - t1))
    return IMAGE


def _compose_config(dockerd):
    """docker/docker-compose.yml with every profile, as docker-compose
    resolves it (anchors merged, paths absolute), as a dict. PyYAML comes from
    the Python that runs docker-compose, which needs it itself."""
    text = dockerd.run([COMPOSE, "-f", COMPOSE_FILE, "--profile", "scale", "config"], timeout=60).text
    with open(COMPOSE) as f:
        shebang = f.readline()
    python = shebang[2:].split()[0] if shebang.startswith("#!") else "python3"
    p = subprocess.run([python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                       input=text.encode(), stdout=subprocess.PIPE, check=True, timeout=60)
    return json.loads(p.stdout)


def _listen_on(command, port):
    """command with --host 127.0.0.1 and --port port."""
    command = list(command)
    for opt, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        assert opt in command, "expected %s in %r" % (opt, command)
        command[command.index(opt) + 1] = value
    return command


class Stack:
    def __init__(self, dockerd, project, config_path, ports, app_dir):
        self.dockerd, self.project, self.config_path = dockerd, project, config_path
        self.ports, self.app_dir = ports, app_dir

    def compose(self, *args, **kw):
        return self.dockerd.run([COMPOSE, "-p", self.project, "-f", self.config_path, *args], **kw)

    def container(self, service):
        return self.compose("ps", "-q", service).text.strip()

    def logs(self, *services):
        return tail(self.compose("logs", "--no-color", "--tail", "40", *services, check=False).text, 120)


@pytest.fixture(scope="module")
def stack(dockerd, image):
    """Every service of docker-compose.yml, on host networking and free ports."""
    config = _compose_config(dockerd)
    services = config["services"]
    assert {"dev", "asgi", "app1", "app2", "app3", "lb"} <= set(services), sorted(services)
    image_cmd = json.loads(dockerd.docker("image", "inspect", "-f", "{{json .Config.Cmd}}", image).text)

    ports = {name: harness.free_port() for name in services}
    app_dir = tempfile.mkdtemp(prefix="pyhost-docker-app-")
    os.chmod(app_dir, 0o755)
    for example in ("hello.py", "hello_asgi.py"):
        shutil.copy(os.path.join(REPO, "examples", example), app_dir)
        os.chmod(os.path.join(app_dir, example), 0o644)

    for name, svc in services.items():
        assert svc.get("image") == IMAGE, (name, svc.get("image"))
        svc.pop("ports", None)
        svc.pop("networks", None)
        svc["network_mode"] = "host"
        if name == "lb":
            env = svc["environment"]
            env["PYHOST_LB_LISTEN"] = "127.0.0.1:%d" % ports["lb"]
            for i in (1, 2, 3):
                env["PYHOST_APP%d" % i] = "127.0.0.1:%d" % ports["app%d" % i]
            continue
        svc["command"] = _listen_on(svc.get("command") or image_cmd, ports[name])
        if "healthcheck" in svc:
            hc = svc["healthcheck"]
            hc["test"] = [a.replace(":8000/", ":%d/" % ports[name]) for a in hc["test"]]
            hc["interval"] = "1s"  # quicker `up`; the replicas' checks are what lb waits on
        if name in ("dev", "asgi"):
            assert any(v.endswith(":/srv/app:ro") for v in svc["volumes"]), svc["volumes"]
            svc["volumes"] = ["%s:/srv/app:ro" % app_dir]
    config.pop("networks", None)

    project = "pyhosttest%d" % os.getpid()
    config_path = os.path.join(dockerd.root, "compose.test.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    s = Stack(dockerd, project, config_path, ports, app_dir)
    try:
        s.compose("--profile", "scale", "up", "-d", "--no-build", timeout=UP_TIMEOUT)
        yield s
    finally:
        s.compose("--profile", "scale", "down", "-t", "10", check=False, timeout=120)
        shutil.rmtree(app_dir, ignore_errors=True)


# -- tests ---------------------------------------------------------------

def test_image_serves_as_non_root_and_stops_promptly(dockerd, image):
    port = harness.free_port()
    cmd = json.loads(dockerd.docker("image", "inspect", "-f", "{{json .Config.Cmd}}", image).text)
    assert cmd[:2] == ["pyhost", "serve"] and "0.0.0.0" in cmd, cmd
    name = "pyhost-test-run-%d" % os.getpid()
    # No --init: pyhost serve itself is PID 1 and must pass SIGTERM on.
    dockerd.docker("run", "-d", "--name", name, "--network", "host", image, *_listen_on(cmd, port))
    try:
        try:
            wait_http(port, timeout=60)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, dockerd.docker("logs", name, check=False).text))
        # Apache's parent is root (it starts Apache), its children are pyhost.
        pyhost_uid = int(dockerd.docker("exec", name, "id", "-u", "pyhost").text)
        top = dockerd.docker("top", name, "-eo", "pid,uid,comm").text.splitlines()[1:]
        uids = sorted(int(line.split()[1]) for line in top if line.split()[2:] == ["apache2"])
        assert uids and uids[0] == 0 and uids[1:] and set(uids[1:]) == {pyhost_uid}, top
        t0 = time.monotonic()
        dockerd.docker("stop", "-t", "20", name)
        took = time.monotonic() - t0
        state = json.loads(dockerd.docker("inspect", "-f", "{{json .State}}", name).text)
        assert took < 5.0, "docker stop took %.1fs" % took
        assert state["ExitCode"] == 0, state
    finally:
        dockerd.docker("rm", "-f", name, check=False)


def test_docker_stop_lets_a_request_in_flight_finish(dockerd, image, workspace):
    # docker stop (and a Kubernetes rolling update) is a SIGTERM to PID 1:
    # pyhost serve turns it into Apache's graceful stop, so a request in
    # flight completes instead of being cut.
    port, token = harness.free_port(), os.urandom(6).hex()
    cmd = json.loads(dockerd.docker("image", "inspect", "-f", "{{json .Config.Cmd}}", image).text)
    cmd = _listen_on(cmd, port)
    cmd[-1] = os.path.join(workspace.apps, "slow_serve.py")
    name = "pyhost-test-stop-%d" % os.getpid()
    dockerd.docker("run", "-d", "--name", name, "--network", "host",
                   "-v", "%s:%s:ro" % (workspace.apps, workspace.apps),
                   "-v", "%s:%s" % (workspace.state, workspace.state), image, *cmd)
    try:
        try:
            wait_http(port, timeout=60, path="/?token=" + token, want=b"slept 0.0\n")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, dockerd.docker("logs", name, check=False).text))
        os.unlink(os.path.join(workspace.state, "started-" + token))
        result = {}

        def fetch():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", "/?sleep=2&token=" + token)
                r = conn.getresponse()
                result["status"], result["body"] = r.status, r.read()
            except Exception as e:
                result["error"] = repr(e)
            finally:
                conn.close()

        t = threading.Thread(target=fetch, daemon=True)
        t.start()
        assert harness.wait_for(
            lambda: os.path.exists(os.path.join(workspace.state, "started-" + token)), timeout=15)
        dockerd.docker("stop", "-t", "20", name)
        t.join(20)
        logs = dockerd.docker("logs", name, check=False).text
        state = json.loads(dockerd.docker("inspect", "-f", "{{json .State}}", name).text)
        assert result == {"status": 200, "body": b"slept 2.0\n"}, (result, logs)
        assert state["ExitCode"] == 0, (state, logs)
        assert "stopping gracefully: 1 request in flight" in logs, logs
    finally:
        dockerd.docker("rm", "-f", name, check=False)


def test_dev_service_serves_bind_mounted_app_and_reloads_it(stack):
    port = stack.ports["dev"]
    try:
        wait_http(port, timeout=60)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, stack.logs("dev")))
    # An edit to the bind-mounted script shows without a restart
    # (WSGIScriptReloading, on by default).
    path = os.path.join(stack.app_dir, "hello.py")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("Hello, world!", "Hello, edited!"))
    wait_http(port, timeout=15, want=b"Hello, edited!\n")


def test_asgi_service_serves_http_and_a_websocket_echo(stack):
    port = stack.ports["asgi"]
    try:
        wait_http(port, timeout=60, want=b"Hello, ASGI!\n")
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, stack.logs("asgi")))
    assert http_get(port, "/nope")[0] == 404
    websockets = pytest.importorskip("websockets")
    from websockets.asyncio.client import connect

    async def echo():
        async with connect("ws://127.0.0.1:%d/ws" % port) as ws:
            await ws.send("through the stack")
            text = await ws.recv()
            await ws.send(b"\x00\xff" * 1000)
            return text, await ws.recv()

    assert asyncio.run(asyncio.wait_for(echo(), 30)) == ("through the stack", b"\x00\xff" * 1000)
    # detected and served as ASGI, with no error logged
    logs = stack.compose("logs", "--no-color", "asgi").text
    assert "(ASGI, callable app)" in logs, tail(logs)
    assert "[pyhost:error]" not in logs and "Traceback" not in logs, tail(logs)


def _balancer_states(port):
    """{member URL: status} from the balancer-manager page (its ?xml=1 view
    wants a same-site Referer; the HTML table is as easy to read)."""
    status, _, body = http_get(port, "/balancer-manager", timeout=2)
    assert status == 200, status
    states = {}
    rows = re.findall(r"<tr>\s*<td><a [^>]*>([^<]+)</a></td>(.*?)</tr>",
                      body.decode("utf-8", "replace"), re.S)
    for url, rest in rows:
        cells = re.findall(r"<td>(.*?)</td>", rest, re.S)
        # Route, RouteRedir, Factor, Set, Status, Elected, ...
        if len(cells) > 4:
            states[url.strip()] = cells[4].strip()
    return states


def test_scale_out_loses_no_request_after_balancer_notices_a_kill(stack):
    lb = stack.ports["lb"]
    members = {i: "http://127.0.0.1:%d" % stack.ports["app%d" % i] for i in (1, 2, 3)}
    try:
        wait_http(lb, timeout=60)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, stack.logs("lb", "app1", "app2", "app3")))
    seen = set()
    for _ in range(30):
        _, headers, _ = http_get(lb)
        seen.add(headers.get("x-pyhost-replica"))
    assert seen == set(members.values()), "replicas answering through lb: %r" % seen
    assert set(_balancer_states(lb)) == set(members.values())

    victim = members[2]
    victim_id = stack.container("app2")
    assert victim_id
    results = []  # (start, end, ok, replica or error)
    lock = threading.Lock()
    stop = threading.Event()
    started = time.monotonic()

    def worker():
        while not stop.is_set() and time.monotonic() - started < LOAD_MAX_SECONDS:
            with lock:
                if len(results) >= LOAD_MAX_REQUESTS:
                    return
            t0 = time.monotonic()
            try:
                status, headers, body = http_get(lb, timeout=5)
                ok = status == 200 and body == b"Hello, world!\n"
                what = headers.get("x-pyhost-replica") if ok else "status %d" % status
            except (OSError, http.client.HTTPException) as e:
                ok, what = False, repr(e)
            with lock:
                results.append((t0, time.monotonic(), ok, what))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(LOAD_WORKERS)]
    for t in threads:
        t.start()
    try:
        time.sleep(KILL_AFTER_SECONDS)
        killed_at = time.monotonic()
        stack.dockerd.docker("kill", victim_id)
        noticed_at = None
        while time.monotonic() - killed_at < NOTICE_TIMEOUT:
            state = _balancer_states(lb).get(victim, "")
            if re.search(r"Err|HcFl|Dis|Stop", state):
                noticed_at = time.monotonic()
                break
            time.sleep(0.05)
        if noticed_at is not None:
            time.sleep(LOAD_AFTER_NOTICED)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads)

    assert noticed_at is not None, "lb did not mark %s failed within %ds of the kill: %r\n%s" % (
        victim, NOTICE_TIMEOUT, _balancer_states(lb), stack.logs("lb"))
    before = [r for r in results if r[1] <= killed_at]
    window = [r for r in results if r[0] < noticed_at and r[1] > killed_at]
    after = [r for r in results if r[0] >= noticed_at]
    failed_after = [r for r in after if not r[2]]
    sys.stderr.write(
        "test_docker: %d requests in %.1fs; noticed %.2fs after the kill; "
        "failures before/while noticing %d, after %d\n"
        % (len(results), results[-1][1] - started if results else 0, noticed_at - killed_at,
           sum(not r[2] for r in before + window), len(failed_after)))
    assert len(before) >= 20 and len(after) >= 20, (len(before), len(after))
    assert {r[3] for r in before if r[2]} == set(members.values())
    assert not failed_after, "requests failed after lb noticed the kill: %r" % failed_after[:10]
    assert victim not in {r[3] for r in after}
