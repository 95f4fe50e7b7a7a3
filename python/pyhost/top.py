"""`pyhost top URL`: a live terminal view of a pyhost server's Prometheus
endpoint (SetHandler pyhost-metrics), refreshed like top: requests/s and
latency percentiles per mount from the histogram, threads, daemon groups,
WebSockets, memory, Python's GC and the ASGI loop.

It reads the text exposition format with a small parser of its own, so
that pyhost needs no Prometheus library at run time."""

import curses
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

from . import __version__

TIMEOUT = 5.0  # seconds for one scrape

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class TopError(Exception):
    """What went wrong, in one line for the user."""


def parse(text):
    """[(name, {label: value}, float)] from the text exposition format (and
    OpenMetrics, which it shares for what pyhost sends)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("not the Prometheus text format: %r" % line[:80])
        labels = {}
        for lm in _LABEL.finditer(m.group(2) or ""):
            labels[lm.group(1)] = re.sub(r'\\[\\"n]', lambda e: _ESCAPES[e.group(0)], lm.group(2))
        try:
            value = float(m.group(3))
        except ValueError:
            raise ValueError("not the Prometheus text format: %r" % line[:80]) from None
        out.append((m.group(1), labels, value))
    return out


def ssl_context(insecure=False, ca_file=None):
    """The system's CA bundle by default; ca_file adds a CA (a self-signed
    server's); insecure checks nothing."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


def fetch(url, context, timeout=TIMEOUT):
    """The endpoint's samples; TopError with one line that says why not."""
    req = urllib.request.Request(url, headers={"Accept": "text/plain",
                                               "User-Agent": "pyhost-top/" + __version__})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            body = resp.read(16 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        raise TopError("%s answered %d %s%s" % (url, e.code, e.reason,
                                              " (the endpoint allows this host?)" if e.code == 403
                                              else "")) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise TopError("%s: certificate not trusted (%s); pass --ca-file PEM, or --insecure"
                           % (url, reason.verify_message or reason)) from None
        raise TopError("%s does not answer: %s" % (url, getattr(reason, "strerror", None) or reason)) \
            from None
    except (socket.timeout, TimeoutError):
        raise TopError("%s does not answer: timed out after %gs" % (url, timeout)) from None
    except (OSError, ValueError) as e:
        raise TopError("%s: %s" % (url, e)) from None
    try:
        samples = parse(body)
    except ValueError:
        samples = []
    if not any(name.startswith("pyhost_requests") for name, _, _ in samples):
        raise TopError("%s is not a pyhost metrics endpoint (no pyhost_requests_total; it needs "
                       "SetHandler pyhost-metrics)" % url)
    return samples


class Snapshot:
    """One scrape, indexed for the view."""

    def __init__(self, samples, when):
        self.when = when
        self.samples = samples

    def get(self, name, **want):
        return [(ls, v) for n, ls, v in self.samples
                if n == name and all(ls.get(k) == w for k, w in want.items())]

    def sum(self, name, **want):
        return sum(v for _, v in self.get(name, **want))

    def by(self, name, key, **want):
        out = {}
        for ls, v in self.get(name, **want):
            out[ls.get(key, "")] = out.get(ls.get(key, ""), 0.0) + v
        return out


def quantile(q, buckets):
    """Like PromQL's histogram_quantile over [(upper bound, cumulative
    count)]: linear within the bucket; None without observations."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return "%.0f %s" % (n, unit) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0


def _ms(seconds):
    return "-" if seconds is None else "%.1f" % (seconds * 1000)


def render(url, cur, prev, interval):
    """The screen as lines of text (the curses view draws them; --once
    prints them)."""
    dt = (cur.when - prev.when) if prev else 0.0

    def rate(name, **want):
        if not prev or dt <= 0:
            return None
        return max(0.0, cur.sum(name, **want) - prev.sum(name, **want)) / dt

    def fmt_rate(r):
        return "-" if r is None else "%.1f" % r

    threads = cur.by("pyhost_threads", "state")
    rss = cur.by("pyhost_process_resident_memory_bytes", "process")
    lines = [
        "pyhost top - %s - %s - every %gs (q quits)" % (url, time.strftime("%H:%M:%S"), interval),
        "requests %s/s  5xx %s/s  in flight %d  websockets open %d" % (
            fmt_rate(rate("pyhost_requests_total")),
            fmt_rate(rate("pyhost_requests_total", status="5xx")),
            cur.sum("pyhost_requests_in_flight"), cur.sum("pyhost_websockets_open")),
        "threads busy %d idle %d  processes %d  memory %s" % (
            threads.get("busy", 0), threads.get("idle", 0), len(rss), _fmt_bytes(sum(rss.values()))),
        "",
        "%-20s %-8s %7s %9s %6s %7s %7s %7s  %s" % (
            "MOUNT", "PROTOCOL", "REQ/S", "TOTAL", "5XX/S", "P50 ms", "P90 ms", "P99 ms", "LIFESPAN"),
    ]
    mounts = {}
    for ls, v in cur.get("pyhost_requests_total"):
        m = mounts.setdefault(ls.get("mount", ""), {"protocols": set(), "total": 0.0})
        m["total"] += v
        if v or ls.get("protocol"):
            m["protocols"].add(ls.get("protocol", ""))
    for mount in sorted(mounts):
        buckets = {}
        for ls, v in cur.get("pyhost_app_seconds_bucket", mount=mount):
            buckets[float(ls["le"])] = v
        if prev:
            for ls, v in prev.get("pyhost_app_seconds_bucket", mount=mount):
                le = float(ls["le"])
                if le in buckets:
                    buckets[le] -= v
        pts = list(buckets.items())
        lifespan = cur.by("pyhost_asgi_lifespan_processes", "state", mount=mount)
        life = " ".join("%s %d" % (st, n) for st, n in lifespan.items() if n) or "-"
        lines.append("%-20s %-8s %7s %9d %6s %7s %7s %7s  %s" % (
            (mount or "(no mount)")[:20], ",".join(sorted(mounts[mount]["protocols"])) or "-",
            fmt_rate(rate("pyhost_requests_total", mount=mount)), mounts[mount]["total"],
            fmt_rate(rate("pyhost_requests_total", mount=mount, status="5xx")),
            _ms(quantile(0.5, pts)), _ms(quantile(0.9, pts)), _ms(quantile(0.99, pts)), life))
    lines += ["", "%-20s %5s %5s %10s %13s %7s %9s" % (
        "PROCESS", "BUSY", "IDLE", "MEMORY", "GC/S gen0/1/2", "INTERPS", "LOOP LAG")]
    busy = cur.by("pyhost_threads", "process", state="busy")
    idle = cur.by("pyhost_threads", "process", state="idle")
    interps = cur.by("pyhost_python_interpreters", "process")
    lag = cur.by("pyhost_asgi_loop_lag_seconds", "process")
    for proc in sorted(set(rss) | set(busy), key=_proc_key):
        gcs = []
        for gen in "012":
            r = rate("pyhost_python_gc_collections_total", process=proc, generation=gen)
            gcs.append("-" if r is None else "%.0f" % r)
        lines.append("%-20s %5d %5d %10s %13s %7s %9s" % (
            proc[:20], busy.get(proc, 0), idle.get(proc, 0),
            _fmt_bytes(rss[proc]) if proc in rss else "-", "/".join(gcs),
            "%d" % interps[proc] if proc in interps else "-",
            "%s ms" % _ms(lag[proc]) if proc in lag else "-"))
    groups = cur.by("pyhost_daemon_processes", "group")
    if groups:
        lines += ["", "%-20s %9s %7s %9s  %s" % (
            "DAEMON GROUP", "PROCESSES", "QUEUED", "RESTARTS", "BY CAUSE / TIMEOUTS")]
        for g in sorted(groups):
            causes = cur.by("pyhost_daemon_restarts_total", "cause", group=g)
            why = ", ".join("%s %d" % (c, n) for c, n in sorted(causes.items()) if n)
            qt = cur.sum("pyhost_daemon_queue_timeouts_total", group=g)
            rt = cur.sum("pyhost_daemon_request_timeouts_total", group=g)
            extra = ", ".join(s for s in (why, "503 queue %d" % qt if qt else "",
                                          "504 request %d" % rt if rt else "") if s)
            lines.append("%-20s %9d %7d %9d  %s" % (
                g[:20], groups[g], cur.sum("pyhost_daemon_queued", group=g),
                sum(causes.values()), extra or "-"))
    return lines


def _proc_key(name):
    kind, _, rest = name.partition("/")
    head, _, idx = rest.rpartition("/")
    return (kind, head, int(idx) if idx.isdigit() else 0, rest)


def _draw(win, lines, status):
    win.erase()
    height, width = win.getmaxyx()
    for y, line in enumerate(lines[:height - 1]):
        try:
            win.addnstr(y, 0, line, width - 1, curses.A_BOLD if y == 0 else curses.A_NORMAL)
        except curses.error:
            pass
    if status:
        try:
            win.addnstr(height - 1, 0, status, width - 1, curses.A_REVERSE)
        except curses.error:
            pass
    win.refresh()


def _loop(win, url, context, interval, first):
    try:
        curses.curs_set(0)
    except curses.error:
        pass
    win.timeout(100)
    prev, cur, status = None, first, ""
    next_at = time.monotonic() + interval
    _draw(win, render(url, cur, prev, interval), status)
    while True:
        key = win.getch()
        if key in (ord("q"), ord("Q")):
            return 0
        if time.monotonic() < next_at and key != curses.KEY_RESIZE:
            continue
        if time.monotonic() >= next_at:
            next_at += interval
            if next_at < time.monotonic():
                next_at = time.monotonic() + interval
            try:
                snap = Snapshot(fetch(url, context), time.monotonic())
                prev, cur, status = cur, snap, ""
            except TopError as e:
                status = "%s (retrying)" % e
        _draw(win, render(url, cur, prev, interval), status)


def run(url, interval=1.0, insecure=False, ca_file=None, once=False):
    """Returns the exit code: 0 after q or Ctrl-C, 1 when the URL does not
    answer as a pyhost endpoint at the start."""
    try:
        context = ssl_context(insecure, ca_file)
    except (OSError, ssl.SSLError) as e:
        sys.stderr.write("pyhost top: --ca-file %s: %s\n" % (ca_file, e))
        return 2
    try:
        first = Snapshot(fetch(url, context), time.monotonic())
        if once:
            time.sleep(interval)
            cur = Snapshot(fetch(url, context), time.monotonic())
            print("\n".join(line.rstrip() for line in render(url, cur, first, interval)))
            return 0
    except TopError as e:
        sys.stderr.write("pyhost top: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        return 0
    if not sys.stdout.isatty():
        sys.stderr.write("pyhost top: the output is not a terminal; pass --once for one frame as text\n")
        return 2
    try:
        return curses.wrapper(_loop, url, context, interval, first)
    except KeyboardInterrupt:
        return 0  # curses.wrapper has restored the terminal
