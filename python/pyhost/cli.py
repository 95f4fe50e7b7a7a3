"""The `pyhost` command: find the module, print the httpd.conf lines that load
it, check an installation, and serve a WSGI script with a private Apache."""

import argparse
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from . import __version__, access, apache, module_location, ModuleNotBuilt, serverconf

STARTUP_TIMEOUT = 30.0  # seconds for httpd to start listening
SHUTDOWN_TIMEOUT = 20.0  # seconds for httpd to stop after SIGTERM


def error(message, code=2):
    sys.stderr.write("pyhost: %s\n" % message)
    return code


def cmd_module_location(args):
    print(module_location())
    return 0


def cmd_module_config(args):
    print("LoadModule pyhost_module %s" % serverconf.quote(module_location()))
    print("WSGIPythonHome %s" % serverconf.quote(sys.prefix))
    return 0


def child_identity(args):
    """(Identity, user, group) of Apache's children. user/group are None when
    we are not root: httpd then ignores User/Group and children keep our uid."""
    user = args.user or access.default_child_user()
    if os.geteuid() != 0 or not user:
        return access.current_identity(), None, None
    group = args.group or grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return access.identity(user, group), user, group


def cmd_check(args):
    ok = True
    apxs = apache.find_apxs()
    try:
        httpd = apache.find_httpd()
        version = apache.httpd_version(httpd) or "version unknown"
        print("apache:   %s (%s); apxs %s" % (httpd, version, apxs or "not found"))
    except apache.ApacheNotFound as e:
        print("apache:   %s" % e)
        ok = False

    try:
        print("module:   %s" % module_location())
    except ModuleNotBuilt as e:
        print("module:   %s" % e)
        ok = False

    running = "%d.%d" % sys.version_info[:2]
    try:
        from . import _buildinfo

        built = "Python %s at %s" % (_buildinfo.PYTHON_VERSION, _buildinfo.PYTHON_HOME)
        same = (_buildinfo.PYTHON_VERSION, _buildinfo.PYTHON_HOME) == (running, sys.base_prefix)
    except ImportError:
        built, same = "unknown (no _buildinfo)", False
    print(
        "python:   module built for %s; running Python %s at %s (prefix %s)%s"
        % (built, running, sys.base_prefix, sys.prefix, "" if same else "  <- MISMATCH")
    )
    ok = ok and same

    try:
        who, _, _ = child_identity(args)
    except KeyError as e:
        print("readable: unknown user or group %s" % e)
        return 1
    problems = access.check_readable(who, args.script)
    if problems:
        for p in problems:
            print("readable: %s" % p.message(who))
        ok = False
    else:
        print("readable: everything Apache's children need is readable by %s" % who.user)
    return 0 if ok else 1


def listen_problem(host, port):
    """Why httpd could not listen on host:port, or None. Checked up front
    because, with the port taken, a connect would succeed against the other
    listener and we would announce a server that is not ours."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return "cannot resolve --host %s: %s" % (host, e)
    family, type_, proto, _, addr = infos[0]
    with socket.socket(family, type_, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as httpd does
        try:
            s.bind(addr)
        except OSError as e:
            return "cannot listen on %s: %s" % (serverconf.listen_address(host, port), e.strerror)
    return None


def wait_for_listen(proc, host, port, timeout):
    """True once a TCP connect to host:port succeeds; False if httpd exits
    first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return proc.poll() is None
        except OSError:
            time.sleep(0.1)
    return False


def _die_with_parent():
    # Runs in the child before exec: if pyhost is killed outright, httpd gets
    # SIGTERM instead of living on with the port held.
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def run_httpd(httpd, conf, server_root, host, port):
    """Start httpd in the foreground, report its URL, stop it on SIGINT or
    SIGTERM. Returns the exit code for pyhost."""
    proc = subprocess.Popen(
        [httpd, "-d", server_root, "-f", conf, "-DFOREGROUND"],
        # Its own session: a terminal's Ctrl-C reaches only us, and we decide
        # how httpd stops.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    stop_requested = []  # monotonic time of the first SIGINT/SIGTERM

    def on_signal(signum, frame):
        if not stop_requested:
            stop_requested.append(time.monotonic())
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if wait_for_listen(proc, host, port, STARTUP_TIMEOUT):
            url = "http://%s/" % serverconf.listen_address(host, port)
            print("pyhost: serving on %s (Apache pid %d, config %s)" % (url, proc.pid, conf), flush=True)
        elif not stop_requested and proc.poll() is None:
            on_signal(None, None)
            proc.wait()
            return error("Apache did not listen on %s:%d within %ds (config %s)"
                         % (host, port, STARTUP_TIMEOUT, conf), 1)

        while proc.poll() is None:
            if stop_requested and time.monotonic() - stop_requested[0] > SHUTDOWN_TIMEOUT:
                # httpd's group: its children are in it too (own session).
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.2)
        if stop_requested:
            return 0
        return error("Apache exited with status %s (its error log is above; config %s)"
                     % (proc.returncode, conf), 1)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def cmd_serve(args):
    script = os.path.abspath(args.target)
    if not os.path.isfile(script):
        return error("%s is not a file: TARGET is a WSGI script defining `application`" % args.target)
    if args.mpm == "prefork" and args.threads not in (None, 1):
        return error("--threads does not apply to --mpm prefork (one request per process)")
    try:
        module = module_location()
        httpd = apache.find_httpd()
        modules_dir = apache.find_modules_dir()
    except (ModuleNotBuilt, apache.ApacheNotFound) as e:
        return error(str(e))
    try:
        who, user, group = child_identity(args)
    except KeyError as e:
        return error("unknown user or group %s" % e)
    problems = access.check_readable(who, script)
    if problems:
        return error(problems[0].message(who))
    problem = listen_problem(args.host, args.port)
    if problem:
        return error(problem + "; choose another --port or --host")

    made_root = args.server_root is None
    server_root = os.path.abspath(args.server_root or tempfile.mkdtemp(prefix="pyhost-"))
    cfg = serverconf.ServeConfig(
        script=script,
        server_root=server_root,
        module_path=module,
        python_home=sys.prefix,
        modules_dir=modules_dir,
        host=args.host,
        port=args.port,
        mpm=args.mpm,
        processes=args.processes,
        threads=args.threads,
        user=user,
        group=group,
        compiled_in=apache.compiled_in_modules(httpd),
    )
    conf = serverconf.write(cfg)
    code = run_httpd(httpd, conf, server_root, args.host, args.port)
    if made_root and code == 0:
        shutil.rmtree(server_root, ignore_errors=True)
    return code


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="pyhost", description="Python web applications inside Apache httpd."
    )
    parser.add_argument("--version", action="version", version="pyhost " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("module-location", help="print the path of mod_pyhost's .so")
    p.set_defaults(func=cmd_module_location)

    p = sub.add_parser("module-config", help="print httpd.conf lines that load mod_pyhost for this Python")
    p.set_defaults(func=cmd_module_config)

    def add_identity(p):
        p.add_argument("--user", help="user Apache's children run as (default as root: www-data)")
        p.add_argument("--group", help="their group (default: the user's primary group)")

    p = sub.add_parser("check", help="check Apache, the module and file permissions")
    p.add_argument("script", nargs="?", help="also check this WSGI script is readable")
    add_identity(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("serve", help="serve a WSGI script with a private Apache")
    p.add_argument("target", metavar="TARGET", help="WSGI script file defining `application`")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--mpm", choices=serverconf.MPMS, default="event")
    p.add_argument("--processes", type=positive_int, help="child processes (default 1; prefork 5)")
    p.add_argument("--threads", type=positive_int, help="threads per child (default 10; not for prefork)")
    add_identity(p)
    p.add_argument("--server-root", help="directory for httpd.conf, pid and locks (default: a new one under /tmp)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModuleNotBuilt as e:
        return error(str(e))


if __name__ == "__main__":
    sys.exit(main())
