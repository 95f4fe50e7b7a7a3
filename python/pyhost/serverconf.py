"""httpd.conf generation for `pyhost serve`: one function from a ServeConfig
to the text of a complete, self-contained httpd.conf, plus the files that go
next to it (the apachectl script of --setup-only)."""

import os
from dataclasses import dataclass, field
from typing import FrozenSet, List, Optional, Tuple

MPMS = ("event", "worker", "prefork")

COMBINED_LOG_FORMAT = (
    r'"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\""'
)

MIME_TYPES = "/etc/mime.types"


@dataclass
class ServeConfig:
    script: str  # absolute path of the WSGI script Apache loads
    server_root: str  # absolute; conf, pid file, locks live here
    module_path: str  # mod_pyhost*.so
    python_home: str  # WSGIPythonHome: sys.prefix (a venv is fine)
    modules_dir: str  # where mod_mpm_event.so & co. are
    host: str = "127.0.0.1"
    port: int = 8000
    mpm: str = "event"
    processes: Optional[int] = None
    threads: Optional[int] = None
    user: Optional[str] = None  # None: httpd is not started as root
    group: Optional[str] = None
    compiled_in: FrozenSet[str] = field(default_factory=frozenset)
    log_level: str = "warn"
    error_log: str = "/dev/stderr"
    access_log: Optional[str] = "/dev/stdout"  # None: no access log
    python_path: List[str] = field(default_factory=list)  # WSGIPythonPath
    url_aliases: List[Tuple[str, str]] = field(default_factory=list)  # (URL, dir)
    https_port: Optional[int] = None
    ssl_certificate_file: Optional[str] = None
    ssl_certificate_key_file: Optional[str] = None
    http2: bool = False
    include_files: List[str] = field(default_factory=list)
    extra_directories: List[str] = field(default_factory=list)  # also granted
    daemon: bool = False  # run the app in a WSGIDaemonProcess group
    daemon_processes: int = 2
    daemon_threads: int = 10
    working_directory: Optional[str] = None  # the daemons' home= (embedded: httpd's cwd)
    callable_object: Optional[str] = None  # WSGIScriptAlias callable-object=
    graceful_timeout: int = 30  # GracefulShutdownTimeout (and daemons' graceful-timeout)

    def resolved_processes(self):
        if self.processes is not None:
            return self.processes
        return 5 if self.mpm == "prefork" else 1

    def resolved_threads(self):
        if self.mpm == "prefork":
            return 1
        return self.threads if self.threads is not None else 10


def quote(value):
    """A directive argument in double quotes, as httpd's tokenizer reads it."""
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def listen_address(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def needed_modules(cfg):
    """Apache modules this config uses, in load order (the MPM first)."""
    names = ["mpm_" + cfg.mpm, "unixd", "authz_core", "log_config"]
    if cfg.url_aliases:
        names += ["alias", "mime"]
    if cfg.https_port:
        names += ["socache_shmcb", "ssl"]
    if cfg.http2:
        names.append("http2")
    return names


def _load_module_lines(cfg):
    lines = []
    for name in needed_modules(cfg):
        if name in cfg.compiled_in:
            continue
        lines.append(
            "LoadModule %s_module %s"
            % (name, quote(os.path.join(cfg.modules_dir, "mod_%s.so" % name)))
        )
    lines.append("LoadModule pyhost_module %s" % quote(cfg.module_path))
    return lines


def _mpm_lines(cfg):
    procs, threads = cfg.resolved_processes(), cfg.resolved_threads()
    # A fixed pool: as many children as asked for, started at once and kept.
    if cfg.mpm == "prefork":
        return [
            "StartServers %d" % procs,
            "MinSpareServers 1",
            "MaxSpareServers %d" % procs,
            "ServerLimit %d" % procs,
            "MaxRequestWorkers %d" % procs,
            "MaxConnectionsPerChild 0",
        ]
    return [
        "StartServers %d" % procs,
        # Room for the old generation finishing its requests next to the new
        # one after a graceful restart (which --reload sends).
        "ServerLimit %d" % (2 * procs + 1),
        "ThreadLimit %d" % threads,
        "ThreadsPerChild %d" % threads,
        "MaxRequestWorkers %d" % (procs * threads),
        "MinSpareThreads 1",
        "MaxSpareThreads %d" % (procs * threads),
        "MaxConnectionsPerChild 0",
    ]


def _mount_lines(cfg):
    # Static URLs (--url-alias) still reach Apache: mod_alias maps before
    # mod_pyhost's WSGIScriptAlias, as it does before mod_wsgi's.
    line = "WSGIScriptAlias / %s" % quote(cfg.script)
    if cfg.callable_object:
        line += " callable-object=%s" % cfg.callable_object
    return [line]


DAEMON_GROUP = "pyhost"


def _daemon_lines(cfg):
    """The app runs in its own processes; Apache's children only relay."""
    opts = [
        "processes=%d" % cfg.daemon_processes,
        "threads=%d" % cfg.daemon_threads,
        "display-name=%{GROUP}",
        quote("python-home=" + cfg.python_home),
    ]
    if cfg.working_directory:
        # The same working directory as embedded mode (httpd's), not the
        # daemon user's home.
        opts.append(quote("home=" + cfg.working_directory))
    if cfg.python_path:
        opts.append(quote("python-path=" + ":".join(cfg.python_path)))
    return [
        "WSGIRestrictEmbedded On",
        "WSGIDaemonProcess %s %s" % (DAEMON_GROUP, " ".join(opts)),
        "WSGIProcessGroup %s" % DAEMON_GROUP,
    ]


def _static_lines(cfg):
    lines = []
    if os.path.isfile(MIME_TYPES):
        lines.append("TypesConfig %s" % quote(MIME_TYPES))
    # Longest URL first: Alias takes the first match.
    for url, directory in sorted(cfg.url_aliases, key=lambda a: -len(a[0])):
        lines += [
            "Alias %s %s" % (quote(url), quote(directory)),
            "<Directory %s>" % quote(directory),
            "    Options FollowSymLinks",
            "    Require all granted",
            "</Directory>",
        ]
    return lines + [""]


def _tls_lines(cfg):
    address = listen_address(cfg.host, cfg.https_port)
    lines = [
        "Listen %s https" % address,
        "SSLSessionCache %s" % quote("shmcb:%s(512000)" % os.path.join(cfg.server_root, "run", "ssl_scache")),
        "<VirtualHost %s>" % address,
        "    ServerName %s" % address,
        "    SSLEngine on",
        "    SSLCertificateFile %s" % quote(cfg.ssl_certificate_file),
        "    SSLCertificateKeyFile %s" % quote(cfg.ssl_certificate_key_file),
    ]
    if cfg.http2:
        lines.append("    Protocols h2 http/1.1")
    return lines + ["</VirtualHost>", ""]


def render(cfg):
    """The text of httpd.conf for cfg."""
    if cfg.mpm not in MPMS:
        raise ValueError("unknown MPM %r (choose from %s)" % (cfg.mpm, ", ".join(MPMS)))
    root = cfg.server_root
    lines = [
        "# Generated by pyhost serve; edits are lost on the next run.",
        "ServerRoot %s" % quote(root),
        "DefaultRuntimeDir %s" % quote(os.path.join(root, "run")),
        "PidFile %s" % quote(os.path.join(root, "run", "httpd.pid")),
        # pyhost serve stops with a graceful stop (SIGWINCH): requests in
        # flight get this long to finish.
        "GracefulShutdownTimeout %d" % cfg.graceful_timeout,
        "Mutex file:%s default" % os.path.join(root, "run"),
        "",
        *_load_module_lines(cfg),
        "",
    ]
    if cfg.user:
        lines += ["User %s" % cfg.user, "Group %s" % (cfg.group or cfg.user), ""]
    lines += [
        "Listen %s" % listen_address(cfg.host, cfg.port),
        "ServerName %s" % listen_address(cfg.host, cfg.port),
        "DocumentRoot %s" % quote(os.path.join(root, "htdocs")),
        *_mpm_lines(cfg),
        "",
        "LogLevel %s" % cfg.log_level,
        "ErrorLog %s" % quote(cfg.error_log),
        "LogFormat %s combined" % COMBINED_LOG_FORMAT,
    ]
    if cfg.access_log:
        lines.append("CustomLog %s combined" % quote(cfg.access_log))
    if cfg.http2:
        # h2c: HTTP/2 over cleartext (prior knowledge or Upgrade); h2 is
        # offered by ALPN on the TLS port.
        lines.append("Protocols h2c http/1.1")
    lines += [
        "",
        "<Directory />",
        "    AllowOverride None",
        "    Require all denied",
        "</Directory>",
    ]
    granted = [os.path.dirname(cfg.script)] + list(cfg.extra_directories)
    for directory in dict.fromkeys(granted):
        lines += ["<Directory %s>" % quote(directory), "    Require all granted", "</Directory>"]
    lines.append("")
    if cfg.url_aliases:
        lines += _static_lines(cfg)
    if cfg.https_port:
        lines += _tls_lines(cfg)
    lines.append("WSGIPythonHome %s" % quote(cfg.python_home))
    if cfg.daemon:
        lines += _daemon_lines(cfg)
    elif cfg.python_path:
        lines.append("WSGIPythonPath %s" % quote(":".join(cfg.python_path)))
    lines += _mount_lines(cfg)
    lines.append("")
    for path in cfg.include_files:
        lines.append("Include %s" % quote(path))
    return "\n".join(lines) + "\n"


def make_dir(path):
    """Creates path (mode 0755: Apache's children pass through it) unless it
    exists; an existing directory's mode is the user's and is left alone.
    Returns True if it was created."""
    if os.path.isdir(path):
        return False
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    return True


def write(cfg):
    """Create the server root's layout and httpd.conf in it; returns its path."""
    for sub in ("run", "htdocs"):
        make_dir(os.path.join(cfg.server_root, sub))
    conf = os.path.join(cfg.server_root, "httpd.conf")
    with open(conf, "w") as f:
        f.write(render(cfg))
    os.chmod(conf, 0o644)
    return conf


APACHECTL = """\
#!/bin/sh
# Generated by `pyhost serve --setup-only`: runs the Apache configured in
# this directory. Logs: {logs}
HTTPD={httpd}
ROOT={root}
run() {{ exec "$HTTPD" -d "$ROOT" -f "$ROOT/httpd.conf" "$@"; }}
case "$1" in
    start|stop|restart|graceful|graceful-stop) run -k "$1" ;;
    configtest) run -t ;;
    foreground) run -DFOREGROUND ;;
    *) echo "usage: $0 start|stop|restart|graceful|graceful-stop|configtest|foreground" >&2
       exit 2 ;;
esac
"""


def write_apachectl(cfg, httpd):
    """The apachectl script of --setup-only; returns its path."""
    path = os.path.join(cfg.server_root, "apachectl")
    with open(path, "w") as f:
        f.write(APACHECTL.format(
            httpd=_sh_quote(httpd), root=_sh_quote(cfg.server_root),
            logs=os.path.join(cfg.server_root, "logs")))
    os.chmod(path, 0o755)
    return path


def _sh_quote(text):
    return "'%s'" % text.replace("'", "'\\''")
