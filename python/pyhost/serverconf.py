"""httpd.conf generation for `pyhost serve`: one function from a ServeConfig
to the text of a complete, self-contained httpd.conf, plus the files that go
next to it (the apachectl script of --setup-only)."""

import os
from dataclasses import dataclass, field
from typing import FrozenSet, List, Optional, Tuple

MPMS = ("event", "worker", "prefork")

# Apache's standard formats by name; pyhost serve's default is combined plus
# the time taken in microseconds (%D), as gunicorn's and uvicorn's logs show it.
LOG_FORMATS = {
    "common": r'%h %l %u %t "%r" %>s %b',
    "combined": r'%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    # %D: the whole request; app_us: the app's part (pyhost's note, "-"
    # for what pyhost did not serve)
    "timed": r'%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %Dus '
             r'app_us=%{pyhost-app-time-us}n',
}
DEFAULT_LOG_FORMAT = "timed"
# Types mod_deflate compresses with --compress-responses (text, not images).
COMPRESSIBLE = ("text/html", "text/plain", "text/css", "text/xml", "text/csv",
                "application/json", "application/javascript", "text/javascript",
                "application/xml", "image/svg+xml")

MIME_TYPES = "/etc/mime.types"

# Where `pyhost serve --metrics` mounts the Prometheus endpoint.
METRICS_PATH = "/.pyhost/metrics"


@dataclass
class ServeConfig:
    script: str  # absolute path of the WSGI (or ASGI) script Apache loads
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
    interface: str = "wsgi"  # "asgi": mounted with ASGIScriptAlias
    graceful_timeout: int = 30  # GracefulShutdownTimeout (and daemons' graceful-timeout)
    mount_point: str = "/"
    request_timeout: Optional[int] = None  # daemon request-timeout=
    maximum_requests: Optional[int] = None  # daemon maximum-requests= / MaxConnectionsPerChild
    limit_request_body: Optional[int] = None  # LimitRequestBody
    trusted_proxies: List[str] = field(default_factory=list)  # mod_remoteip
    access_log_format: str = DEFAULT_LOG_FORMAT  # a LOG_FORMATS name or a LogFormat string
    pid_file: Optional[str] = None
    compress_responses: bool = False
    ssl_ca_certificate_file: Optional[str] = None  # verify client certificates
    https_only: bool = False
    hsts: Optional[int] = None  # Strict-Transport-Security max-age
    server_status: bool = False  # mod_status at /server-status, from this host only
    metrics: bool = False  # pyhost's Prometheus endpoint at METRICS_PATH, from 127.0.0.1/::1 only
    rotate_logs: bool = False  # file logs through rotatelogs
    max_log_size: int = 10  # MB, with rotate_logs
    rotatelogs: str = "/usr/bin/rotatelogs"

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
    if cfg.compress_responses:
        names += ["filter", "deflate"]
    if cfg.https_only:
        names.append("alias")
    if cfg.hsts is not None:
        names.append("headers")
    if cfg.server_status or cfg.metrics:
        names.append("authz_host")
    if cfg.server_status:
        names.append("status")
    return list(dict.fromkeys(names))


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
            "MaxConnectionsPerChild %d" % _embedded_recycle(cfg),
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
        "MaxConnectionsPerChild %d" % _embedded_recycle(cfg),
    ]


def _embedded_recycle(cfg):
    # --maximum-requests in embedded mode: Apache recycles a child after this
    # many connections (keep-alive ones may carry several requests).
    return cfg.maximum_requests if cfg.maximum_requests and not cfg.daemon else 0


def _mount_lines(cfg):
    # Static URLs (--url-alias) still reach Apache: mod_alias maps before
    # mod_pyhost's WSGIScriptAlias, as it does before mod_wsgi's.
    directive = "ASGIScriptAlias" if cfg.interface == "asgi" else "WSGIScriptAlias"
    line = "%s %s %s" % (directive, quote(cfg.mount_point), quote(cfg.script))
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
    if cfg.request_timeout:
        opts.append("request-timeout=%d" % cfg.request_timeout)
    if cfg.maximum_requests:
        opts.append("maximum-requests=%d" % cfg.maximum_requests)
    # A stop waits for the daemons' requests as long as for the children's.
    opts.append("graceful-timeout=%d" % cfg.graceful_timeout)
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
    if cfg.ssl_ca_certificate_file:
        lines += [
            "    SSLCACertificateFile %s" % quote(cfg.ssl_ca_certificate_file),
            "    SSLVerifyClient require",
            "    SSLVerifyDepth 10",
            # SSL_CLIENT_S_DN, SSL_CLIENT_CERT... reach the app's environ.
            "    SSLOptions +StdEnvVars +ExportCertData",
        ]
    if cfg.hsts is not None:
        lines.append('    Header always set Strict-Transport-Security "max-age=%d"' % cfg.hsts)
    return lines + ["</VirtualHost>", ""]


def _https_only_lines(cfg):
    """The plain HTTP port answers every request with a redirect to HTTPS."""
    address = listen_address(cfg.host, cfg.port)
    return [
        "<VirtualHost %s>" % address,
        "    ServerName %s" % address,
        "    RedirectMatch permanent ^(.*)$ https://%s$1" % listen_address(cfg.host, cfg.https_port),
        "</VirtualHost>",
        "",
    ]


def log_target(cfg, path):
    """A log's ErrorLog/CustomLog argument: the path, or with rotate_logs a
    pipe to rotatelogs (-n: a fixed set of files, no dated names)."""
    if cfg.rotate_logs and not path.startswith("/dev/"):
        return quote("|%s -n 10 %s %dM" % (cfg.rotatelogs, path, cfg.max_log_size))
    return quote(path)


def _extra_lines(cfg):
    lines = []
    if cfg.limit_request_body is not None:
        lines.append("LimitRequestBody %d" % cfg.limit_request_body)
    if cfg.trusted_proxies:
        # As mod_wsgi-express --trust-proxy: from these peers only, the
        # forwarded client address, host, port and scheme are the app's
        # REMOTE_ADDR, HTTP_HOST, SERVER_PORT and wsgi.url_scheme; the same
        # headers from anyone else never reach the app.
        lines += ["WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host "
                  "X-Forwarded-Port X-Forwarded-Proto",
                  "WSGITrustedProxies %s" % " ".join(cfg.trusted_proxies)]
    if cfg.compress_responses:
        lines.append("AddOutputFilterByType DEFLATE %s" % " ".join(COMPRESSIBLE))
    if cfg.server_status:
        lines += ["ExtendedStatus On",
                  "<Location /server-status>",
                  "    SetHandler server-status",
                  "    Require local",
                  "</Location>"]
    if cfg.metrics:
        # Loopback clients only, whatever --host is: the figures say what
        # the server runs, which is nobody else's business.
        lines += ["<Location %s>" % METRICS_PATH,
                  "    SetHandler pyhost-metrics",
                  "    Require ip 127.0.0.1 ::1",
                  "</Location>"]
    return lines + [""] if lines else []


def metrics_extra_listen(host, port):
    """(host, port) of the extra Listen the metrics need to be reachable
    from 127.0.0.1 when serving on `host`, or None when the main Listen
    already is (a wildcard or a loopback host)."""
    if host in ("0.0.0.0", "::", "*", "::1") or host.startswith("127."):
        return None
    return ("127.0.0.1", port)


def metrics_url(cfg):
    """The URL `pyhost top` reads the metrics from, on this host."""
    host = "[::1]" if cfg.host == "::1" else "127.0.0.1"
    if cfg.https_only:  # the HTTP port only redirects
        return "https://%s:%d%s" % (host, cfg.https_port, METRICS_PATH)
    return "http://%s:%d%s" % (host, cfg.port, METRICS_PATH)


def render(cfg):
    """The text of httpd.conf for cfg."""
    if cfg.mpm not in MPMS:
        raise ValueError("unknown MPM %r (choose from %s)" % (cfg.mpm, ", ".join(MPMS)))
    root = cfg.server_root
    lines = [
        "# Generated by pyhost serve; edits are lost on the next run.",
        "ServerRoot %s" % quote(root),
        "DefaultRuntimeDir %s" % quote(os.path.join(root, "run")),
        "PidFile %s" % quote(cfg.pid_file or os.path.join(root, "run", "httpd.pid")),
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
        *(["Listen %s" % listen_address(*metrics_extra_listen(cfg.host, cfg.port))]
          if cfg.metrics and metrics_extra_listen(cfg.host, cfg.port) else []),
        "ServerName %s" % listen_address(cfg.host, cfg.port),
        "DocumentRoot %s" % quote(os.path.join(root, "htdocs")),
        *_mpm_lines(cfg),
        "",
        "LogLevel %s" % cfg.log_level,
        "ErrorLog %s" % log_target(cfg, cfg.error_log),
        "LogFormat %s pyhost" % quote(LOG_FORMATS.get(cfg.access_log_format, cfg.access_log_format)),
    ]
    if cfg.access_log:
        lines.append("CustomLog %s pyhost" % log_target(cfg, cfg.access_log))
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
    if cfg.https_only:
        lines += _https_only_lines(cfg)
    lines += _extra_lines(cfg)
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
