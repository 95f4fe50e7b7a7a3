"""The `pyhost` command: find the module, print the httpd.conf lines that load
it, check an installation, and serve a WSGI script with a private Apache."""

import argparse
import dataclasses
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from . import (__version__, access, apache, checks, djangosite, install, logpipes, module_location,
               ModuleNotBuilt, preflight, reloader, serverconf, targets)

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


def identity_problem(args):
    """One line for a --user/--group that does not exist, or None."""
    if args.user:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            return "--user %s: no such user on this machine" % args.user
    if args.group:
        try:
            grp.getgrnam(args.group)
        except KeyError:
            return "--group %s: no such group on this machine" % args.group
    return None


def child_identity(args):
    """(Identity, user, group) of Apache's children. user/group are None when
    we are not root: httpd then ignores User/Group and children keep our uid."""
    user = args.user or access.default_child_user()
    if os.geteuid() != 0 or not user:
        return access.current_identity(), None, None
    group = args.group or grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return access.identity(user, group), user, group


def cmd_check(args):
    problem = identity_problem(args)
    if problem:
        return error(problem, 1)
    who, user, group = child_identity(args)
    target = None
    if args.script:
        try:
            target = targets.resolve(args.script)
        except targets.TargetError as e:
            return error(str(e), 1)
    return 0 if checks.run(who, target, user, group) else 1


def cmd_top(args):
    from . import top  # curses only for this command
    if args.interval <= 0:
        return error("--interval must be more than 0")
    if not re.match(r"https?://", args.url):
        return error("pyhost top: %s: give an http:// or https:// URL (pyhost serve --metrics "
                     "prints it)" % args.url)
    return top.run(args.url, interval=args.interval, insecure=args.insecure, ca_file=args.ca_file,
                   once=args.once)


def cmd_install_module(args):
    apache_root = args.apache_root or install.default_apache_root()
    try:
        install.install(modules_dir=args.modules_dir, apache_root=apache_root)
    except PermissionError as e:
        return error("%s: %s; run as root (sudo) or pass --modules-dir/--apache-root you can write"
                     % (e.filename, e.strerror), 1)
    except (OSError, apache.ApacheNotFound) as e:
        return error(str(e), 1)
    return 0


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


def open_connections(port):
    """Server-side TCP connections on `port` still open (not listening, not
    in TIME_WAIT), from /proc/net/tcp and tcp6. During a graceful stop Apache
    has closed its idle keep-alive connections, so these are the requests
    still in flight."""
    wanted = "%04X" % port
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[1].rsplit(":", 1)[1] == wanted \
                    and fields[3] not in ("0A", "06"):
                count += 1
    return count


class Stopper:
    """The stop sequence: the first SIGINT/SIGTERM asks httpd for a graceful
    stop (SIGWINCH: listeners close, requests in flight finish, up to
    GracefulShutdownTimeout); a second one, or the timeout passing, asks for an
    immediate stop (SIGTERM); httpd's whole process group is killed if it is
    still there SHUTDOWN_TIMEOUT later."""

    def __init__(self, proc, port, graceful_timeout):
        self.proc, self.port, self.graceful_timeout = proc, port, graceful_timeout
        self.graceful_at = self.immediate_at = None
        # Before httpd listens there is nothing in flight, and it may not
        # have its SIGWINCH handler yet (the default action ignores it).
        self.serving = False

    def requested(self):
        return self.graceful_at is not None

    def on_signal(self, signum=None, frame=None):
        if self.proc.poll() is not None:
            return
        if self.graceful_at is None and self.graceful_timeout > 0 and self.serving:
            self.graceful_at = time.monotonic()
            n = open_connections(self.port) if self.port else 0
            print("pyhost: stopping gracefully: %d request%s in flight, waiting up to %gs "
                  "(Ctrl-C again to stop now)" % (n, "" if n == 1 else "s", self.graceful_timeout),
                  flush=True)
            os.kill(self.proc.pid, signal.SIGWINCH)
        elif self.immediate_at is None:
            self.graceful_at = self.graceful_at or time.monotonic()
            self.immediate_at = time.monotonic()
            os.kill(self.proc.pid, signal.SIGTERM)
            print("pyhost: stopping now", flush=True)

    def tick(self):
        """Called while httpd runs after a stop was asked for."""
        now = time.monotonic()
        if self.immediate_at is None:
            # httpd enforces GracefulShutdownTimeout itself; this is the net
            # under it, a little later.
            if now - self.graceful_at > self.graceful_timeout + 5:
                self.on_signal()
        elif now - self.immediate_at > SHUTDOWN_TIMEOUT:
            # httpd's group: its children are in it too (own session).
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def run_httpd(httpd, conf, server_root, host, port, urls, watcher=None, graceful_timeout=30,
              pipes=None, cwd=None, process_name=None):
    """Start httpd in the foreground, report its URLs, stop it on SIGINT or
    SIGTERM (gracefully first, see Stopper); with a reloader.ChangeWatcher,
    restart it gracefully when the app's code changes. Returns the exit code
    for pyhost."""
    proc = subprocess.Popen(
        [process_name or httpd, "-d", server_root, "-f", conf, "-DFOREGROUND"],
        executable=httpd,
        cwd=cwd,  # the children's, and so the app's, working directory
        # Its own session: a terminal's Ctrl-C reaches only us, and we decide
        # how httpd stops.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        pass_fds=pipes.fds if pipes else (),
    )
    if pipes:
        pipes.start(sys.stderr, sys.stdout)
    stopper = Stopper(proc, port, graceful_timeout)
    old = {s: signal.signal(s, stopper.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if wait_for_listen(proc, host, port, STARTUP_TIMEOUT):
            stopper.serving = True
            if not stopper.requested():
                print("pyhost: serving on %s (Apache pid %d, config %s)"
                      % (" and ".join(urls), proc.pid, conf), flush=True)
        elif not stopper.requested() and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait()
            return error("Apache did not listen on %s:%d within %ds (config %s)"
                         % (host, port, STARTUP_TIMEOUT, conf), 1)

        while proc.poll() is None:
            if stopper.requested():
                stopper.tick()
            elif watcher is not None:
                changed = watcher.poll()
                if changed:
                    print("pyhost: %s changed; restarting the app (graceful restart)" % changed,
                          flush=True)
                    os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.2)
        if stopper.requested():
            return 0
        return error("Apache exited with status %s (its error log is above; config %s)"
                     % (proc.returncode, conf), 1)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if pipes:
            pipes.close()


def serve_problem(args):
    """A reason the options cannot work together, or None."""
    if (args.daemon_processes or args.daemon_threads) and not args.daemon:
        return "--daemon-processes/--daemon-threads need --daemon"
    if args.mpm == "prefork" and args.threads not in (None, 1):
        return "--threads does not apply to --mpm prefork (one request per process)"
    if args.https_port and not (args.ssl_certificate_file and args.ssl_certificate_key_file):
        return "--https-port needs --ssl-certificate-file and --ssl-certificate-key-file"
    if (args.ssl_certificate_file or args.ssl_certificate_key_file) and not args.https_port:
        return "--ssl-certificate-file/--ssl-certificate-key-file need --https-port"
    if args.https_port == args.port:
        return "--https-port must differ from --port"
    if args.http2 and args.mpm == "prefork":
        return "--http2 needs --mpm event or worker (mod_http2 does not run under prefork)"
    if args.reload and args.setup_only:
        return ("--reload needs the running `pyhost serve` to restart Apache; "
                "leave it out with --setup-only")
    if args.request_timeout and not args.daemon:
        return ("--request-timeout needs --daemon (a request stuck in an Apache child cannot "
                "be interrupted; a daemon process's can)")
    for flag, value in (("--ssl-ca-certificate-file", args.ssl_ca_certificate_file),
                        ("--https-only", args.https_only), ("--hsts", args.hsts is not None)):
        if value and not args.https_port:
            return "%s needs --https-port" % flag
    if args.rotate_logs and not (args.error_log or args.access_log):
        return "--rotate-logs rotates --error-log/--access-log files: give at least one"
    if args.rotate_logs and not os.access(serverconf.ServeConfig.rotatelogs, os.X_OK):
        return "--rotate-logs needs %s (Debian: apache2-utils)" % serverconf.ServeConfig.rotatelogs
    if args.access_log_format not in serverconf.LOG_FORMATS and "%" not in args.access_log_format:
        return ("--access-log-format %r is neither common, combined nor timed nor an Apache "
                "LogFormat string (with %%-directives)" % args.access_log_format)
    if args.process_name is not None and (not args.process_name.strip() or "/" in args.process_name):
        return "--process-name must be a non-empty name without /"
    for path in (args.ssl_certificate_file, args.ssl_certificate_key_file,
                 args.ssl_ca_certificate_file, *args.include_file, *args.env_file):
        if path and not os.path.isfile(path):
            return "%s is not a file" % path
    for url, directory in args.url_alias:
        if not url.startswith("/") or url.rstrip("/") == "":
            return "--url-alias %s: the URL must start with / and not be / itself (the app is there)" % url
        if not os.path.isdir(directory):
            return "--url-alias %s %s: not a directory" % (url, directory)
    return None


def cmd_serve(args):
    problem = serve_problem(args)
    if problem:
        return error(problem)
    try:
        app_env = [pair for path in args.env_file for pair in read_env_file(path)] + args.env
    except (OSError, ValueError) as e:
        return error(str(e))
    # The app's environment: Apache's children and daemons inherit httpd's.
    os.environ.update(app_env)
    try:
        target = targets.resolve(args.target, django=args.django, django_settings=args.django_settings,
                                 python_path=split_paths(args.python_path),
                                 callable_object=args.callable_object,
                                 interface=None if args.interface == "auto" else args.interface)
    except targets.TargetError as e:
        return error(str(e))
    try:
        module = module_location()
        httpd = apache.find_httpd()
        modules_dir = apache.find_modules_dir()
    except (ModuleNotBuilt, apache.ApacheNotFound) as e:
        return error(str(e))
    problem = identity_problem(args)
    if problem:
        return error(problem)
    who, user, group = child_identity(args)
    url_aliases = [(url.rstrip("/"), os.path.abspath(d)) for url, d in args.url_alias]
    for path in target.source_files + [d for _, d in url_aliases]:
        problems = access.check_readable(who, path)
        if problems:
            return error(problems[0].message(who))
    if args.working_directory:
        workdir = os.path.abspath(args.working_directory)
        problem = dir_problem(workdir, who, "--working-directory")
        if problem:
            return error(problem)
    else:
        workdir = default_working_directory(target, who)
    facts = {}
    if not args.lazy:
        facts = preflight.load_as_children(target, user, group, workdir)
        if facts is None:
            return error("nothing was started: fix the app, or pass --lazy to start Apache anyway "
                         "(the error is then reported at each request)", 1)
    # What the app speaks: as forced, else as the preflight found (with
    # --lazy nothing was loaded: WSGI unless --interface asgi).
    interface = target.interface or facts.get("interface") or "wsgi"
    target.callable = facts.get("callable", target.callable)
    if interface == "asgi" and args.daemon:
        return error("%s is an ASGI app, and daemon mode does not serve ASGI yet: leave out "
                     "--daemon (it runs in Apache's children)%s"
                     % (target.description if target.kind != "script" else target.script,
                        "" if target.interface else ", or pass --interface wsgi if it is WSGI"))
    if target.kind == "django":
        try:
            url_aliases += djangosite.prepare(target, facts, who, args.collectstatic,
                                          taken=[u for u, _ in url_aliases])
        except djangosite.DjangoError as e:
            return error(str(e), 1)
    if not args.setup_only:
        for port in filter(None, (args.port, args.https_port)):
            problem = listen_problem(args.host, port)
            if problem:
                return error(problem + "; choose another --port/--https-port or --host")
        extra = args.metrics and serverconf.metrics_extra_listen(args.host, args.port)
        if extra and listen_problem(*extra):
            return error("--metrics: " + listen_problem(*extra)
                         + "; the metrics are served on 127.0.0.1 at --port")

    setup_dir = args.setup_only
    made_root = not (setup_dir or args.server_root)
    if made_root:
        server_root = tempfile.mkdtemp(prefix="pyhost-")
        os.chmod(server_root, 0o755)
    else:
        server_root = os.path.abspath(setup_dir or args.server_root)
        if not serverconf.make_dir(server_root):
            problem = dir_problem(server_root, who, "--setup-only" if setup_dir else "--server-root")
            if problem:
                return error(problem)
    plan = ServePlan(target=target, who=who, user=user, group=group, module=module, httpd=httpd,
                     modules_dir=modules_dir, url_aliases=url_aliases, workdir=workdir,
                     server_root=server_root, setup_dir=setup_dir, interface=interface)
    try:
        return serve_in(args, plan)
    finally:
        if made_root:
            shutil.rmtree(server_root, ignore_errors=True)


def default_working_directory(target, who):
    """The current directory, as `python app.py` would have it, when Apache's
    children can enter it; else the app's own directory (readable: checked)."""
    cwd = os.getcwd()
    if dir_problem(cwd, who, "") is None:
        return cwd
    fallback = target.python_path[0] if target.python_path else "/"
    print("pyhost: user %s (Apache's children) cannot enter %s; the app's working directory "
          "is %s (choose one with --working-directory)" % (who.user, cwd, fallback), flush=True)
    return fallback


def dir_problem(path, who, what):
    """Why Apache's children (who) cannot pass through directory path, or None.
    A user's directory is never loosened behind their back."""
    if not os.path.isdir(path):
        return "%s %s is not a directory" % (what, path)
    blocked = access.blocking_component(path, who, list_dir=False)
    if blocked:
        return ("%s %s: Apache's children (user %s) must pass through it, and %s is %s; "
                "allow it (chmod o+x, or a group %s is in) or choose another directory"
                % (what, path, who.user, blocked[0], blocked[1], who.user))
    return None


@dataclasses.dataclass
class ServePlan:
    """What cmd_serve checked and decided, for serve_in."""
    target: targets.Target
    who: access.Identity
    user: str
    group: str
    module: str
    httpd: str
    modules_dir: str
    url_aliases: list
    workdir: str
    server_root: str
    setup_dir: str
    interface: str = "wsgi"  # or "asgi"


def serve_in(args, plan):
    """Writes the config into the server root and runs (or, with
    --setup-only, leaves) Apache; returns pyhost's exit code."""
    target, server_root, setup_dir = plan.target, plan.server_root, plan.setup_dir
    logs = os.path.join(server_root, "logs")
    if setup_dir:
        serverconf.make_dir(logs)

    # Relative log paths are the user's, not the (temporary) server root's.
    error_log = args.error_log and os.path.abspath(args.error_log)
    access_log = None if args.no_access_log else (args.access_log and os.path.abspath(args.access_log))
    pipes = None
    if setup_dir:
        error_log = error_log or os.path.join(logs, "error.log")
        if not args.no_access_log:
            access_log = access_log or os.path.join(logs, "access.log")
    else:
        pipes = logpipes.LogPipes(error=not error_log,
                                  access=not (args.no_access_log or access_log))
        error_log = error_log or pipes.path("error")
        access_log = access_log or pipes.path("access")

    script = target.script
    watcher = None
    if target.needs_wrapper(args.reload):
        state_dir = None
        if args.reload:
            state_dir = os.path.join(server_root, "reload")
            make_child_writable_dir(state_dir, plan.user, plan.group)
            watcher = reloader.ChangeWatcher(state_dir)
        script = write_wrapper(server_root, target, state_dir, plan.interface)

    cfg = serverconf.ServeConfig(
        script=script,
        server_root=server_root,
        module_path=plan.module,
        python_home=sys.prefix,
        modules_dir=plan.modules_dir,
        host=args.host,
        port=args.port,
        mpm=args.mpm,
        processes=args.processes,
        threads=args.threads,
        user=plan.user,
        group=plan.group,
        compiled_in=apache.compiled_in_modules(plan.httpd),
        log_level=args.log_level,
        error_log=error_log,
        access_log=access_log,
        python_path=target.python_path,
        url_aliases=plan.url_aliases,
        https_port=args.https_port,
        ssl_certificate_file=args.ssl_certificate_file and os.path.abspath(args.ssl_certificate_file),
        ssl_certificate_key_file=args.ssl_certificate_key_file and os.path.abspath(args.ssl_certificate_key_file),
        http2=args.http2,
        include_files=[os.path.abspath(p) for p in args.include_file],
        daemon=args.daemon,
        daemon_processes=args.daemon_processes or 2,
        daemon_threads=args.daemon_threads or 10,
        graceful_timeout=args.graceful_timeout,
        working_directory=plan.workdir,
        mount_point=args.mount_point,
        request_timeout=args.request_timeout,
        maximum_requests=args.maximum_requests,
        limit_request_body=args.limit_request_body,
        trusted_proxies=args.trust_proxy,
        access_log_format=args.access_log_format,
        pid_file=args.pid_file and os.path.abspath(args.pid_file),
        compress_responses=args.compress_responses,
        ssl_ca_certificate_file=args.ssl_ca_certificate_file and os.path.abspath(args.ssl_ca_certificate_file),
        https_only=args.https_only,
        hsts=args.hsts,
        server_status=args.server_status,
        metrics=args.metrics,
        rotate_logs=args.rotate_logs,
        max_log_size=args.max_log_size,
        interface=plan.interface,
        callable_object=None if script != target.script or target.callable == "application"
        else target.callable,
    )
    conf = serverconf.write(cfg)
    if setup_dir:
        ctl = serverconf.write_apachectl(cfg, plan.httpd)
        print("pyhost: wrote %s and %s; start it with `%s start`, stop it with `%s stop` "
              "(logs in %s)" % (conf, ctl, ctl, ctl, logs))
        return 0
    print(banner(args, plan, cfg), flush=True)
    path = args.mount_point.rstrip("/") + "/"
    urls = ["http://%s%s" % (serverconf.listen_address(args.host, args.port), path)]
    if args.https_port:
        urls.append("https://%s%s" % (serverconf.listen_address(args.host, args.https_port), path))
    return run_httpd(plan.httpd, conf, server_root, args.host, args.port, urls, watcher,
                     graceful_timeout=args.graceful_timeout, pipes=pipes, cwd=plan.workdir,
                     process_name=args.process_name)


def banner(args, plan, cfg):
    """What is about to run, before Apache starts: the app and its interface,
    Python, Apache and its MPM, the process model, where the logs go."""
    t = plan.target
    app = t.description if t.kind != "script" else t.script
    kind = plan.interface.upper()
    if t.kind != "django":
        app += " (%s, callable %s)" % (kind, t.callable)
    else:
        app += " (%s)" % kind
    procs, threads = cfg.resolved_processes(), cfg.resolved_threads()
    model = "embedded: %d process%s x %d thread%s" % (
        procs, "" if procs == 1 else "es", threads, "" if threads == 1 else "s")
    if cfg.daemon:
        model = "daemon: %d process%s x %d threads (Apache's children relay to them)" % (
            cfg.daemon_processes, "" if cfg.daemon_processes == 1 else "es", cfg.daemon_threads)
    logs = []
    for name, value in (("error log", cfg.error_log), ("access log", cfg.access_log)):
        if value:
            logs.append("%s %s" % (name, "on this terminal" if value.startswith("/dev/fd/") else value))
    lines = [
        "pyhost %s: %s" % (__version__, app),
        "  Python %s (%s)" % (sys.version.split()[0], sys.executable),
        "  %s, %s MPM, %s" % (apache.httpd_version(plan.httpd) or plan.httpd, cfg.mpm, model),
    ]
    if cfg.metrics:
        lines.append("  metrics (from this host only): pyhost top %s%s"
                     % (serverconf.metrics_url(cfg), " --insecure" if cfg.https_only else ""))
    lines.append("  %s; starting Apache..." % (", ".join(logs) or "no logs"))
    return "\n".join(lines)


def split_paths(values):
    return [p for value in values for p in value.split(os.pathsep) if p]


def make_child_writable_dir(path, user, group):
    """A directory Apache's children (user:group when we run as root) write."""
    os.makedirs(path, exist_ok=True)
    if user:
        os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    os.chmod(path, 0o755)


def write_wrapper(server_root, target, state_dir, interface="wsgi"):
    """The generated WSGI (or ASGI) script, in a directory of its own (Apache
    grants access to the script's directory)."""
    app_dir = os.path.join(server_root, "app")
    os.makedirs(app_dir, exist_ok=True)
    os.chmod(app_dir, 0o755)
    path = os.path.join(app_dir, "pyhost_app.wsgi")
    with open(path, "w") as f:
        f.write(targets.wrapper_source(target, state_dir, interface))
    os.chmod(path, 0o644)
    return path


def whole_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None


def positive_int(text):
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text):
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
              *("trace%d" % i for i in range(1, 9)))


def log_level(text):
    words = text.split()
    for i, word in enumerate(words):
        level = word.rsplit(":", 1)[-1] if i else word
        if level not in LOG_LEVELS or (i == 0 and ":" in word):
            raise argparse.ArgumentTypeError(
                "%r is not an Apache log level (%s, optionally followed by module:level)"
                % (word, ", ".join(LOG_LEVELS[:8]) + ", trace1-8"))
    if not words:
        raise argparse.ArgumentTypeError("empty")
    return text


def mount_point(text):
    if not text.startswith("/") or "//" in text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError("must be a URL path starting with / (like /app)")
    return text.rstrip("/") or "/"


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_pair(text):
    key, sep, value = text.partition("=")
    if not sep or not ENV_NAME.match(key):
        raise argparse.ArgumentTypeError("%r is not KEY=VALUE with a variable name as KEY" % text)
    return key, value


def read_env_file(path):
    """KEY=VALUE lines; blank lines and # comments skipped; a value in
    matching single or double quotes loses them; `export ` may lead."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            try:
                key, value = env_pair(line)
            except argparse.ArgumentTypeError:
                raise ValueError("%s:%d: expected KEY=VALUE, got %r" % (path, no, line)) from None
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            pairs.append((key, value))
    return pairs


def interface_name(text):
    word = text.strip().lower()
    if word not in ("auto", "asgi", "wsgi"):
        raise argparse.ArgumentTypeError("expected auto, asgi or wsgi, not %r" % text)
    return word


def port_number(text):
    value = whole_number(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("must be a TCP port (1-65535)")
    return value


def add_serve_arguments(p):
    p.add_argument("target", metavar="TARGET", nargs="?",
                   help="a WSGI or ASGI script (app.py, site.wsgi) defining `application`, or "
                        "module:callable (main:app) importable from the current directory")
    p.add_argument("--interface", default="auto", type=interface_name, metavar="auto|asgi|wsgi",
                   help="what the app speaks (default auto: ASGI for a coroutine function or an "
                        "object whose __call__ is one, such as FastAPI's app; else WSGI; with "
                        "--lazy nothing is loaded up front, so auto means WSGI)")
    p.add_argument("--django", metavar="PATH",
                   help="serve the Django project in PATH (the directory with manage.py)")
    p.add_argument("--collectstatic", action="store_true",
                   help="Django: run collectstatic into STATIC_ROOT before serving (Apache serves "
                        "STATIC_URL from STATIC_ROOT)")
    p.add_argument("--django-settings", metavar="MODULE",
                   help="its settings module, when --django cannot tell (e.g. mysite.settings)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--mpm", choices=serverconf.MPMS, default="event", help="Apache MPM (default event)")
    p.add_argument("--processes", type=positive_int, help="child processes (default 1; prefork 5)")
    p.add_argument("--threads", type=positive_int, help="threads per child (default 10; not for prefork)")
    p.add_argument("--python-path", action="append", default=[], metavar="DIR[:DIR...]",
                   help="add to sys.path (WSGIPythonPath); repeatable")
    p.add_argument("--url-alias", nargs=2, action="append", default=[], metavar=("URL", "DIR"),
                   help="serve the files in DIR at URL with Apache itself (static files); repeatable")
    p.add_argument("--callable-object", metavar="NAME",
                   help="the WSGI callable's name in the script or module (default application)")
    p.add_argument("--working-directory", metavar="DIR",
                   help="the app's working directory, in embedded and daemon mode (default: "
                        "the current directory)")
    p.add_argument("--lazy", action="store_true",
                   help="do not load the app before starting Apache (a broken app is then "
                        "reported at each request instead of stopping pyhost serve)")
    p.add_argument("--graceful-timeout", type=non_negative_int, default=30, metavar="SECONDS",
                   help="on SIGTERM or the first Ctrl-C, let requests in flight finish for up to "
                        "this long (default 30; 0 stops at once); a second Ctrl-C stops at once")
    p.add_argument("--reload", action="store_true",
                   help="restart the app when a Python source file it loaded changes (development)")
    p.add_argument("--https-port", type=port_number, help="also serve HTTPS on this port")
    p.add_argument("--ssl-certificate-file", metavar="PEM", help="certificate (chain) for --https-port")
    p.add_argument("--ssl-certificate-key-file", metavar="PEM", help="its private key")
    p.add_argument("--http2", action="store_true",
                   help="offer HTTP/2 (h2 by ALPN on the HTTPS port, h2c on the HTTP port; needs mod_http2)")
    p.add_argument("--user", help="user Apache's children run as when started as root (default www-data)")
    p.add_argument("--group", help="their group (default: the user's primary group)")
    p.add_argument("--include-file", action="append", default=[], metavar="EXTRA.conf",
                   help="Include this file at the end of the generated httpd.conf; repeatable")
    p.add_argument("--log-level", default="warn", type=log_level,
                   help="Apache LogLevel: emerg, alert, crit, error, warn (default), notice, info, "
                        "debug, trace1-8; module:level pairs may follow")
    p.add_argument("--error-log", metavar="PATH", help="error log file (default: the terminal)")
    p.add_argument("--access-log", metavar="PATH", help="combined-format access log (default: the terminal)")
    p.add_argument("--no-access-log", action="store_true", help="no access log")
    p.add_argument("--server-root", metavar="DIR",
                   help="directory for httpd.conf, pid and locks (default: a new one under /tmp, "
                        "removed on exit)")
    p.add_argument("--setup-only", metavar="DIR",
                   help="write httpd.conf and an apachectl script (start|stop|restart|graceful|configtest) "
                        "into DIR and exit; logs go to DIR/logs")
    p.add_argument("--daemon", action="store_true",
                   help="run the app in its own daemon processes (WSGIDaemonProcess); Apache's "
                        "children relay requests to them")
    p.add_argument("--daemon-processes", type=positive_int, metavar="N",
                   help="daemon processes with --daemon (default 2)")
    p.add_argument("--daemon-threads", type=positive_int, metavar="N",
                   help="threads per daemon process with --daemon (default 10)")
    p.add_argument("--mount-point", default="/", type=mount_point, metavar="URL",
                   help="the URL the app is mounted at (its SCRIPT_NAME; default /)")
    p.add_argument("--env", action="append", default=[], type=env_pair, metavar="KEY=VALUE",
                   help="set an environment variable for the app (os.environ); repeatable")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="KEY=VALUE lines (# comments, optional quotes) as --env; repeatable")
    p.add_argument("--request-timeout", type=positive_int, metavar="SECONDS",
                   help="with --daemon: a request still running after this long gets 504 and a "
                        "TimeoutError in its thread")
    p.add_argument("--maximum-requests", type=positive_int, metavar="N",
                   help="recycle a process after N requests (--daemon: daemon processes; "
                        "embedded: Apache's children, counted in connections)")
    p.add_argument("--limit-request-body", type=non_negative_int, metavar="BYTES",
                   help="largest request body accepted (LimitRequestBody; larger gets 413)")
    p.add_argument("--trust-proxy", action="append", default=[], metavar="ADDRESS",
                   help="a proxy (address or CIDR) whose X-Forwarded-For/-Host/-Port/-Proto "
                        "give the app the client's address, host, port and scheme; repeatable")
    p.add_argument("--access-log-format", default=serverconf.DEFAULT_LOG_FORMAT, metavar="FORMAT",
                   help="common, combined, timed (combined plus the time taken; the default) "
                        "or an Apache LogFormat string")
    p.add_argument("--pid-file", metavar="PATH", help="write Apache's pid here")
    p.add_argument("--process-name", metavar="NAME",
                   help="the name Apache's processes show in ps (default apache2/httpd)")
    p.add_argument("--compress-responses", action="store_true",
                   help="gzip text, JSON, JavaScript and SVG responses for clients that accept "
                        "it (mod_deflate)")
    p.add_argument("--ssl-ca-certificate-file", metavar="PEM",
                   help="with --https-port: require client certificates signed by these CAs "
                        "(SSL_CLIENT_* reach the app's environ)")
    p.add_argument("--https-only", action="store_true",
                   help="with --https-port: the HTTP port redirects every request to HTTPS")
    p.add_argument("--hsts", type=non_negative_int, nargs="?", const=31536000, metavar="SECONDS",
                   help="with --https-port: send Strict-Transport-Security (default max-age a year)")
    p.add_argument("--server-status", action="store_true",
                   help="Apache's mod_status at /server-status, for requests from this host only")
    p.add_argument("--metrics", action="store_true",
                   help="pyhost's Prometheus endpoint at %s, for requests from 127.0.0.1 and ::1 "
                        "only; the banner prints the `pyhost top` command that watches it"
                        % serverconf.METRICS_PATH)
    p.add_argument("--rotate-logs", action="store_true",
                   help="rotate --error-log/--access-log files through rotatelogs (10 files kept)")
    p.add_argument("--max-log-size", type=positive_int, default=10, metavar="MB",
                   help="with --rotate-logs: rotate at this size (default 10)")


class Parser(argparse.ArgumentParser):
    """A bad option is one line that names it, not the whole usage."""

    def error(self, message):
        self.exit(2, "%s: error: %s (%s --help lists the options)\n" % (self.prog, message, self.prog))


def build_parser():
    parser = Parser(
        prog="pyhost", description="Python web applications inside Apache httpd."
    )
    parser.add_argument("--version", action="version", version="pyhost " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("module-location", help="print the path of mod_pyhost's .so")
    p.set_defaults(func=cmd_module_location)

    p = sub.add_parser("module-config", help="print httpd.conf lines that load mod_pyhost for this Python")
    p.set_defaults(func=cmd_module_config)

    p = sub.add_parser("install-module",
                       help="copy mod_pyhost into Apache's modules directory (and write mods-available/pyhost.*)")
    p.add_argument("--modules-dir", metavar="DIR",
                   help="where to copy mod_pyhost.so (default: apxs's LIBEXECDIR)")
    p.add_argument("--apache-root", metavar="DIR",
                   help="Apache's configuration directory (default /etc/apache2, else /etc/httpd)")
    p.set_defaults(func=cmd_install_module)

    p = sub.add_parser("check", help="check Apache, the module, the Python and file permissions")
    p.add_argument("script", nargs="?", metavar="TARGET",
                   help="also check the app (a WSGI script, module:callable or Django project "
                        "directory) loads as Apache's children would load it")
    p.add_argument("--user", help="user Apache's children run as (default as root: www-data)")
    p.add_argument("--group", help="their group (default: the user's primary group)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("top", help="watch a pyhost server's metrics endpoint live, like top")
    p.add_argument("url", metavar="URL",
                   help="its metrics endpoint (SetHandler pyhost-metrics), e.g. "
                        "http://127.0.0.1:8000%s as pyhost serve --metrics mounts it"
                        % serverconf.METRICS_PATH)
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="refresh every this long (default 1)")
    p.add_argument("--ca-file", metavar="PEM",
                   help="trust this CA for an https URL too (default: the system's CA bundle)")
    p.add_argument("--insecure", action="store_true",
                   help="https: do not check the server's certificate")
    p.add_argument("--once", action="store_true",
                   help="print one frame as text (after one interval) and exit")
    p.set_defaults(func=cmd_top)

    p = sub.add_parser("serve", help="serve a WSGI or ASGI app with a private Apache in the foreground",
                       epilog="Every option can also be set with an environment variable: "
                              "PYHOST_ and the option's name in capitals with _ for - "
                              "(PYHOST_PORT=9000, PYHOST_DAEMON=1, PYHOST_ENV='A=1 B=2'); "
                              "the command line wins.")
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)
    env_defaults(p, os.environ)
    return parser


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def env_defaults(parser, environ):
    """Options from PYHOST_* variables (as GUNICORN_CMD_ARGS and GRANIAN_*
    do): each becomes the option's default, so the command line still wins.
    Repeatable options take a shell-quoted list."""
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        name = "PYHOST_" + action.dest.upper()
        if name not in environ:
            continue
        raw = environ[name]
        try:
            action.default = _env_value(action, raw)
        except (argparse.ArgumentTypeError, ValueError) as e:
            parser.error("%s=%r: %s" % (name, raw, e))


def _env_value(action, raw):
    convert = action.type or (lambda v: v)
    if action.nargs == 0:  # a flag
        word = raw.strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError("expected one of %s" % ", ".join(TRUE_WORDS + FALSE_WORDS[:-1]))
        return word in TRUE_WORDS
    if isinstance(action, argparse._AppendAction):
        words = [convert(w) for w in shlex.split(raw)]
        if action.nargs == 2:
            if len(words) % 2:
                raise ValueError("expected pairs of values")
            return [words[i:i + 2] for i in range(0, len(words), 2)]
        return words
    if action.choices is not None and raw not in action.choices:
        raise ValueError("expected one of %s" % ", ".join(action.choices))
    return convert(raw)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModuleNotBuilt as e:
        return error(str(e))


if __name__ == "__main__":
    sys.exit(main())
