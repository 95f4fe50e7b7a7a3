"""`pyhost serve --reload`, both halves.

In each Apache child, the generated WSGI script calls start(): a daemon thread
notes the modification time of every Python source file the process has
loaded (sys.modules, rescanned as more get imported) and, when one changes,
writes a marker file naming it into the state directory.

In the `pyhost serve` process, ChangeWatcher reads those markers and answers
each new change with one graceful restart (SIGUSR1) of the Apache it started:
every child is replaced, so the app is imported afresh everywhere, and
requests in flight finish first. A (path, mtime) is acted on once, so old
children that notice the same edit before they exit cause no second restart.
"""

import os
import sys
import sysconfig
import threading
import time

INTERVAL = 0.5  # seconds between scans in a child
MARKER_PREFIX = "changed-"


# ---- in Apache's children -------------------------------------------------

class _Monitor:
    def __init__(self, state_dir, interval):
        self.state_dir = state_dir
        self.interval = interval
        self.started = time.time()
        self.mtimes = {}  # path -> mtime_ns when first seen
        self.reported = set()  # (path, mtime_ns) already written as a marker
        self.lock = threading.Lock()
        stdlib = sysconfig.get_paths().get("stdlib")
        # The standard library does not change while you develop.
        self.skip = tuple(p + os.sep for p in {stdlib, os.path.realpath(stdlib)} if p)

    def watch(self, path):
        path = os.path.abspath(path)
        with self.lock:
            if path in self.mtimes or path.startswith(self.skip):
                return
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                mtime = None  # missing now: its appearance is a change
            self.mtimes[path] = mtime

    def scan_modules(self):
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py"):
                self.watch(path)

    def changed(self):
        """(path, mtime_ns) of a watched file that differs from what was
        loaded, or None. A file first seen with an mtime after this process
        started loading the app may have been imported before the edit: that
        counts as a change too."""
        started_ns = int(self.started * 1e9)
        with self.lock:
            items = list(self.mtimes.items())
        for path, seen in items:
            try:
                now = os.stat(path).st_mtime_ns
            except OSError:
                now = None
            if (now != seen or (seen is not None and seen > started_ns)) \
                    and (path, now) not in self.reported:
                return path, now
        return None

    def report(self, path, mtime):
        name = "%s%d" % (MARKER_PREFIX, os.getpid())
        tmp = os.path.join(self.state_dir, "." + name)
        with open(tmp, "w") as f:
            f.write("%s\t%s\n" % (mtime if mtime is not None else "missing", path))
        os.replace(tmp, os.path.join(self.state_dir, name))

    def run(self):
        while True:
            try:
                self.scan_modules()
                change = self.changed()
                if change:
                    # Keep watching: if a restart does not come (or this
                    # process outlives it), a later edit is reported too.
                    self.report(*change)
                    self.reported.add(change)
            except Exception as e:  # never take the app down; say why we stopped
                sys.stderr.write("pyhost reload monitor stopped: %r\n" % (e,))
                return
            time.sleep(self.interval)


def start(state_dir, paths=(), interval=INTERVAL):
    """Start this process's monitor (once) and watch paths as well."""
    monitor = getattr(sys, "_pyhost_reload_monitor", None)
    if monitor is None:
        monitor = _Monitor(state_dir, interval)
        sys._pyhost_reload_monitor = monitor
        threading.Thread(target=monitor.run, name="pyhost-reload", daemon=True).start()
    for path in paths:
        monitor.watch(path)
    return monitor


def watch_traceback(exc_info):
    """Watch the files in a failed import's traceback (and a SyntaxError's
    file), which never reach sys.modules."""
    monitor = getattr(sys, "_pyhost_reload_monitor", None)
    if monitor is None:
        return
    _, exc, tb = exc_info
    if isinstance(exc, SyntaxError) and exc.filename:
        monitor.watch(exc.filename)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".py") and os.path.isfile(filename):
            monitor.watch(filename)
        tb = tb.tb_next


# ---- in `pyhost serve` ----------------------------------------------------

class ChangeWatcher:
    """Reads the children's markers; poll() returns the path of a change not
    acted on yet (and forgets the markers), else None."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.handled = set()

    def poll(self):
        try:
            names = [n for n in os.listdir(self.state_dir) if n.startswith(MARKER_PREFIX)]
        except OSError:
            return None
        new = None
        for name in names:
            path = os.path.join(self.state_dir, name)
            try:
                with open(path) as f:
                    mtime, _, changed = f.read().rstrip("\n").partition("\t")
                os.unlink(path)
            except OSError:
                continue
            if (changed, mtime) not in self.handled:
                self.handled.add((changed, mtime))
                new = new or changed
        return new
