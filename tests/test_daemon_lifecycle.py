"""Daemon process management across Apache's lifecycle: every socket file
and process of every generation accounted for through graceful and hard
restarts and a stop; a group's default user taken from Apache's User
wherever that line is; a group whose processes cannot start backs off and
answers 503 at once; the socket directory made when it is missing.

Each test runs a real Apache with the real module; daemons are found among
the parent's descendants by their title and stopped only through Apache."""

import os
import pwd
import re
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

import pytest

import harness
from harness import wait_for
from test_daemon import (APP, LIBV, Load, _fake_home, alive, conf, daemon_pids, info,
                         no_crash, start)


def sockets(directory):
    try:
        return sorted(f for f in os.listdir(directory) if f.endswith(".sock"))
    except FileNotFoundError:
        return []


class PidSampler:
    """Records every daemon pid of a group seen while it runs (a thread
    polling the process tree), so that a test can check each one is gone
    at the end, whichever generation it belonged to."""

    def __init__(self, srv, group="grp", interval=0.05):
        self.srv, self.group, self.interval = srv, group, interval
        self.seen = set()
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.halt.is_set():
            if self.srv.running():
                self.seen.update(daemon_pids(self.srv, self.group))
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.thread.join(10)


def _restart(srv, sig):
    before = srv.error_log().count("resuming normal operations")
    os.kill(srv.proc.pid, sig)
    assert wait_for(lambda: srv.error_log().count("resuming normal operations") > before,
                    timeout=30), "no 'resuming normal operations' after %s" % sig
    srv.wait_ready()


# ---- every generation accounted for (issue 12) ----------------------------------

def test_restarts_and_stop_leave_no_socket_process_or_lost_child(short_server, mpm):
    """Graceful restarts (SIGUSR1) and hard ones (SIGHUP) under light
    traffic, then a stop: each generation's socket goes with its last
    process, Apache never meets a daemon it does not know (AH00488) nor
    one of a generation it has no record of (AH00546), and at the stop
    nothing is left."""
    srv = start(short_server, "processes=2 threads=2 graceful-timeout=3", mpm=mpm)
    wait_for(lambda: len(daemon_pids(srv)) == 2, timeout=15)
    with PidSampler(srv) as sampler, \
            Load(srv, "/d/info", threads=2, duration=60, limit=100000) as load:
        time.sleep(0.5)
        for sig in (signal.SIGUSR1, signal.SIGUSR1, signal.SIGHUP, signal.SIGUSR1,
                    signal.SIGHUP, signal.SIGUSR1):
            _restart(srv, sig)
            time.sleep(0.7)
        # Between restarts the old generations wind down: once they are
        # gone, only the current generation's socket is left.
        current = set(daemon_pids(srv))
        assert wait_for(lambda: not [p for p in sampler.seen - set(daemon_pids(srv))
                                     if alive(p)], timeout=20), \
            [p for p in sampler.seen if alive(p)]
        assert wait_for(lambda: len(sockets(srv.run)) == 1, timeout=10), sockets(srv.run)
        load.halt.set()
    assert len(load.results) > 50
    assert srv.get("/d/info").status == 200
    assert len(sampler.seen) >= 2 * 7, sampler.seen  # each generation had its own
    assert current <= sampler.seen
    rc = srv.stop(signal.SIGTERM)
    assert rc == 0
    assert not sockets(srv.run), sockets(srv.run)
    left = [p for p in sampler.seen if alive(p)]
    assert not left, left
    log = srv.error_log()
    assert not re.search(r"AH00488|AH00546|long lost child|no record of generation", log), \
        [l for l in log.splitlines() if re.search("AH00488|AH00546", l)]
    assert "PYH0043" not in log
    no_crash(srv)


def test_graceful_stop_after_restarts_leaves_nothing(short_server):
    """The same at a graceful stop (SIGWINCH), with a daemon of an older
    generation still finishing a request when the stop comes."""
    srv = start(short_server, "processes=1 threads=2 graceful-timeout=4")
    with PidSampler(srv) as sampler:
        result = {}
        t = threading.Thread(target=lambda: result.update(r=srv.get("/d/sleep?t=2",
                                                                    timeout=30)))
        t.start()
        time.sleep(0.5)
        _restart(srv, signal.SIGUSR1)
        assert info(srv)["pid"] in daemon_pids(srv)
        os.kill(srv.proc.pid, signal.SIGWINCH)
        srv.proc.wait(30)
        t.join(30)
    assert result["r"].status == 200
    assert not sockets(srv.run), sockets(srv.run)
    assert not [p for p in sampler.seen if alive(p)]
    assert not re.search(r"AH00488|AH00546", srv.error_log())


def test_daemon_of_an_old_generation_that_does_not_stop_is_killed(short_server):
    """A daemon of an earlier generation that cannot finish stopping (an
    atexit handler that hangs) is killed once past its time (graceful-
    timeout + shutdown-timeout + a margin), reaped, and its socket goes."""
    srv = start(short_server, "processes=1 threads=2 graceful-timeout=1 "
                "shutdown-timeout=1",
                "WSGIScriptAlias /stuck @APPS@/stuck_exit.wsgi process-group=grp\n")
    old = srv.get("/stuck").json()["pid"]
    assert old in daemon_pids(srv)
    old_sockets = sockets(srv.run)
    assert len(old_sockets) == 1
    mark = srv.log_mark()
    srv.graceful_restart()
    assert info(srv)["pid"] != old
    # Killed by the parent's monitor, which runs every ten seconds or so.
    assert wait_for(lambda: not alive(old), timeout=30), "still there: %d" % old
    assert "PYH0043: daemon process %d" % old in srv.log_since(mark)
    assert wait_for(lambda: old_sockets[0] not in sockets(srv.run), timeout=5), \
        sockets(srv.run)
    assert len(sockets(srv.run)) == 1
    assert srv.stop() == 0
    assert not sockets(srv.run)
    assert not re.search(r"AH00488|AH00546", srv.error_log())


# ---- directive order (issue 14, fault 1) -------------------------------------------

class UserLast(harness.Apache):
    """Apache with its User/Group lines moved to the end of httpd.conf,
    after the WSGIDaemonProcess lines (as in many real configs)."""

    def render(self, ports):
        text = super().render(ports)
        user = harness.run_user()
        assert user and user in text
        return text.replace(user, "", 1) + "\n" + user


@pytest.fixture
def own_servers():
    made = []
    yield made
    for srv in made:
        srv.stop()


@pytest.mark.parametrize("order", ["user-first", "user-last"])
def test_default_user_is_apaches_whatever_the_order(short_server, workspace, own_servers,
                                                    order):
    opts = "processes=2 threads=8"
    if order == "user-first":
        srv = short_server("order", extra=conf(opts))
    else:
        srv = UserLast(workspace, "order-last-%d" % len(harness.ALL_SERVERS),
                       extra=conf(opts))
        own_servers.append(srv)
    srv.start()
    www = pwd.getpwnam(re.search(r"User (\S+)", harness.run_user()).group(1))
    assert wait_for(lambda: len(daemon_pids(srv)) == 2, timeout=15)
    d = info(srv, timeout=10)
    assert d["uid"] == www.pw_uid and d["gid"] == www.pw_gid, d
    assert d["pid"] in daemon_pids(srv)
    time.sleep(1)
    log = srv.error_log()
    assert "PYH0045" not in log and "#-1" not in log, log[-3000:]
    assert log.count("PYH0049") == 2  # each started once, none restarted


# ---- a group that cannot start (issue 14, fault 1) ---------------------------------

def test_group_that_cannot_start_backs_off_and_answers_503_at_once(short_server, mpm,
                                                                   workspace, token):
    missing = os.path.join(workspace.root, "no-such-home-" + token)
    extra = ("WSGIDaemonProcess bad display-name=%%{GROUP} processes=2 threads=2 "
             "home=%s\n"
             "WSGIScriptAlias /b %s process-group=bad\n" % (missing, APP))
    srv = start(short_server, "processes=1 threads=2", extra, mpm=mpm)
    # A few failed starts in a row, then the group is marked as failing.
    text = srv.wait_log_text(0, "PYH0055", timeout=15)
    assert "PYH0055" in text, text[-3000:]
    failing = [l for l in text.splitlines() if "PYH0055" in l][0]
    assert "'bad'" in failing and missing in failing, failing
    # Its requests are answered at once, with a log line naming the cause.
    for _ in range(3):
        mark = srv.log_mark()
        t0 = time.time()
        r = srv.get("/b/info", timeout=10)
        took = time.time() - t0
        assert r.status == 503, (r.status, r.body[:200])
        assert took < 1.0, took
        assert (r.header("Retry-After") or "").isdigit(), r.headers
        line = [l for l in srv.wait_log_text(mark, "PYH0056").splitlines()
                if "PYH0056" in l]
        assert line and missing in line[0] and "'bad'" in line[0], line
    # It no longer spins: over 6 s, a handful of attempts at most (before,
    # each process was restarted about once a second: 12 in 6 s).
    mark = srv.log_mark()
    time.sleep(6)
    attempts = srv.log_since(mark).count("PYH0046")
    assert attempts <= 4, srv.log_since(mark)[-3000:]
    # The other group is not affected.
    assert info(srv)["process_group"] == "grp"
    no_crash(srv)


def test_group_whose_python_cannot_start_gets_503(short_server, workspace, token):
    """Python itself failing in the daemon (a python-home that passes the
    startup check but is no working Python: no encodings package) is a
    failed start like any other, named in the 503's log line."""
    home = _fake_home(workspace, "broken-home-" + token, version=LIBV)
    extra = ("WSGIDaemonProcess bad display-name=%%{GROUP} processes=1 threads=2 "
             "python-home=%s\n"
             "WSGIScriptAlias /b %s process-group=bad\n" % (home, APP))
    srv = start(short_server, "processes=1 threads=2", extra)
    text = srv.wait_log_text(0, "PYH0055", timeout=20)
    assert "PYH0055" in text and "PYH0048" in text, text[-3000:]
    mark = srv.log_mark()
    t0 = time.time()
    r = srv.get("/b/info", timeout=10)
    assert r.status == 503 and time.time() - t0 < 1.0, r
    line = [l for l in srv.wait_log_text(mark, "PYH0056").splitlines() if "PYH0056" in l]
    assert line and "Python could not start" in line[0] and home in line[0], line
    assert info(srv)["process_group"] == "grp"


def test_request_already_waiting_on_a_failing_group_gets_503(short_server, workspace,
                                                             token):
    """A request that reached the group's socket just before Apache's
    children learnt the group was failing waits in the socket's backlog,
    where no process accepts it: the parent answers it (relay frame S,
    503) at the group's next attempt rather than leaving it to its
    timeout. Played here by connecting to the socket directly (root may)."""
    missing = os.path.join(workspace.root, "no-home-" + token)
    extra = ("WSGIDaemonProcess bad display-name=%%{GROUP} processes=1 threads=2 "
             "home=%s\n"
             "WSGIScriptAlias /b %s process-group=bad\n" % (missing, APP))
    srv = start(short_server, "processes=1 threads=2", extra)
    assert "PYH0055" in srv.wait_log_text(0, "PYH0055", timeout=15)
    path = os.path.join(srv.run, "pyhost.%d.1.1.sock" % srv.proc.pid)
    mark = srv.log_mark()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    s.sendall(b"Q\0\0\0" + struct.pack("=I", 0))
    t0 = time.time()
    data = b""
    while len(data) < 12:
        chunk = s.recv(64)
        if not chunk:
            break
        data += chunk
    took = time.time() - t0
    s.close()
    assert data[:1] == b"S" and struct.unpack("=I", data[4:8]) == (4,), data
    assert struct.unpack("=i", data[8:12]) == (503,), data
    assert took < 5, took
    assert "answered 1 request(s)" in srv.wait_log_text(mark, "answered 1 request")


def test_failing_group_recovers_when_the_cause_is_fixed(short_server, workspace, token):
    home = os.path.join(workspace.root, "late-home-" + token)
    extra = ("WSGIDaemonProcess bad display-name=%%{GROUP} processes=1 threads=2 "
             "home=%s\n"
             "WSGIScriptAlias /b %s process-group=bad\n" % (home, APP))
    srv = start(short_server, "processes=1 threads=2", extra)
    assert "PYH0055" in srv.wait_log_text(0, "PYH0055", timeout=15)
    assert srv.get("/b/info", timeout=10).status == 503
    os.makedirs(home)
    os.chmod(home, 0o755)
    # The back-off is capped: the next attempt comes within a few seconds
    # and the group serves again.
    assert wait_for(lambda: srv.get("/b/info", timeout=10).status == 200, timeout=20), \
        srv.error_log()[-3000:]
    assert info(srv, "/b/info")["cwd"] == home


# ---- socket directory (issue 14, fault 2) -------------------------------------------
#
# Apache itself refuses a DefaultRuntimeDir directive naming a directory
# that does not exist, so the missing directory comes (1) from Apache's
# compiled-in default, /var/run/apache2 on Debian, when the config does
# not set DefaultRuntimeDir (Apache in a private mount namespace whose /run
# is an empty tmpfs: a fresh machine or container), and (2) from a
# WSGISocketPrefix (relative to ServerRoot) whose directories are not there
# yet.

DEBIAN_RUNDIR = "/var/run/apache2"


def _private_run_possible():
    try:
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                            "sh", "-c", "mount -t tmpfs pyhost-test /run"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


def _compiled_rundir_is_debians():
    try:
        with open(harness.find_apache(), "rb") as f:
            return (DEBIAN_RUNDIR.encode() + b"\0") in f.read()
    except OSError:
        return False


class NoRuntimeDir(harness.Apache):
    """Apache without a DefaultRuntimeDir line: Apache's compiled-in one."""

    def render(self, ports):
        text = super().render(ports)
        line = "DefaultRuntimeDir %s\n" % self.run
        assert line in text
        return text.replace(line, "")


def test_missing_default_runtime_dir_is_made(workspace, own_servers, monkeypatch):
    if not _compiled_rundir_is_debians():
        pytest.skip("Apache's compiled-in runtime dir is not %s" % DEBIAN_RUNDIR)
    if not _private_run_possible():
        pytest.skip("cannot mount a private /run here (unshare/mount not permitted)")
    wrapper = os.path.join(workspace.root, "apache-empty-run.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                "# Apache with an empty /run of its own: its runtime dir is missing.\n"
                "exec unshare --mount --propagation private -- /bin/sh -c "
                "'mount -t tmpfs -o mode=0755 pyhost-test /run && exec \"$0\" \"$@\"' "
                "%s \"$@\"\n" % harness.find_apache())
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(harness, "find_apache", lambda: wrapper)
    srv = NoRuntimeDir(workspace, "rtdefault-%d" % len(harness.ALL_SERVERS),
                       extra=conf("processes=1 threads=2"))
    own_servers.append(srv)
    srv.start()
    # Seen through the Apache parent's own mount namespace (/var/run is a
    # symbolic link to /run, which /proc/PID/root would resolve in ours).
    rundir = "/proc/%d/root%s" % (srv.proc.pid, os.path.realpath(DEBIAN_RUNDIR))
    st = os.stat(rundir)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode)
    assert info(srv)["process_group"] == "grp"
    assert sockets(rundir) == ["pyhost.%d.1.0.sock" % srv.proc.pid], os.listdir(rundir)
    assert "PYH0054" in srv.error_log()
    assert srv.stop() == 0


def test_socket_prefix_in_missing_nested_dirs(short_server, token):
    srv = short_server("sockdirs")
    top = os.path.join(srv.dir, "socks-" + token)
    nested = os.path.join(top, "a", "b")
    # Relative to ServerRoot (srv.dir), as mod_wsgi takes RHEL's "run/wsgi".
    srv.extra = conf("processes=1 threads=2",
                     "WSGISocketPrefix socks-%s/a/b/wsgi\n" % token)
    assert not os.path.exists(top)
    old = os.umask(0o077)  # Apache inherits it: the mode must not depend on it
    try:
        srv.start()
    finally:
        os.umask(old)
    for d in (top, os.path.dirname(nested), nested):
        st = os.stat(d)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, (d, oct(st.st_mode))
    assert info(srv)["process_group"] == "grp"
    assert len(sockets(nested)) == 1 and sockets(nested)[0].startswith("wsgi."), \
        os.listdir(nested)
    srv.stop()
    assert not sockets(nested)


def test_socket_dir_that_cannot_be_made_is_a_clear_startup_error(short_server, token):
    srv = short_server("sockdirbad")
    blocker = os.path.join(srv.dir, "file-" + token)
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    srv.extra = conf("processes=1 threads=2", "WSGISocketPrefix %s/sub/wsgi\n" % blocker)
    srv.start(wait=False)
    assert wait_for(lambda: not srv.running(), timeout=20), "Apache started"
    lines = [l for l in srv.error_log().splitlines() if "PYH" in l]
    assert len(lines) == 1 and "PYH0044" in lines[0], lines
    assert blocker in lines[0] and "Not a directory" in lines[0], lines[0]
