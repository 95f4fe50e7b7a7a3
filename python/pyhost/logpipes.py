"""The terminal's logs for `pyhost serve`: Apache writes its error and
access logs into pipes that pyhost made and reads, instead of reopening
/dev/stderr and /dev/stdout itself. Reopening fails when the terminal belongs
to another user (`runuser -u nobody -- pyhost serve`: AH00091) and, with
output redirected to a file, starts writing at offset 0 over pyhost's own
lines."""

import os
import re
import threading

# Apache's error log line: [date] [module:level] [pid N:tid T] [client A] message
ERROR_LINE = re.compile(
    r"^\[\w{3} \w{3} [ \d]\d (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? \d{4}\] "
    r"\[(?:[^\]:]*:)?(?P<level>\w+)\] \[pid (?P<pid>\d+)(?::tid \d+)?\] "
    r"(?:\[(?:client|remote) [^\]]*\] )?(?P<message>.*)$")
COLOURS = {"emerg": "1;31", "alert": "1;31", "crit": "1;31", "error": "31", "warn": "33",
           "notice": "36", "info": "32", "debug": "2"}


# A traceback's first line names its group id ("PYH0100: ... [id]: Traceback
# ..."); every other line of it starts with "[id] " (module/log.c).
TRACEBACK_HEAD = re.compile(r"^PYH\d{4}: .* \[(?P<id>[^\]\s]+)\]: ")
TRACEBACK_LINE = re.compile(r"^\[(?P<id>[^\]\s]+)\] (?P<text>.*)$")


def terminal_formatter(colour):
    """For a person at a terminal: `21:15:07 warn   1234 message`, the level
    coloured (unless NO_COLOR), a traceback's lines (or escaped newlines)
    indented under its first."""
    groups = []  # ids of recent tracebacks, newest last

    def fmt(line):
        m = ERROR_LINE.match(line)
        if not m:
            return line
        t = TRACEBACK_LINE.match(m.group("message"))
        if t and t.group("id") in groups:
            return "    " + t.group("text")
        h = TRACEBACK_HEAD.match(m.group("message"))
        if h:
            groups.append(h.group("id"))
            del groups[:-64]
        level = m.group("level")
        level = "trace" if level.startswith("trace") else level
        shown = "%-6s" % level
        if colour:
            shown = "\033[%sm%s\033[0m" % (COLOURS.get(level, "2"), shown)
        lines = m.group("message").split("\\n")
        head = "%s %s %6s %s" % (m.group("time"), shown, m.group("pid"), lines[0])
        return "\n".join([head] + ["    " + l for l in lines[1:] if l.strip()])
    return fmt


def formatter_for(out, environ=os.environ):
    """How error-log lines are shown on out: compact on a terminal, as
    Apache wrote them anywhere else (a file, a pipe, a log collector)."""
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return None
    return terminal_formatter(colour=not environ.get("NO_COLOR"))


class LogPipes:
    def __init__(self, error=True, access=True):
        self._pairs = {}  # name -> (read fd, write fd)
        for name, wanted in (("error", error), ("access", access)):
            if wanted:
                r, w = os.pipe()
                os.set_inheritable(w, True)
                self._pairs[name] = (r, w)
        self._pumps = []

    def path(self, name):
        """What the config names for this log (httpd opens /dev/fd/N: the
        same pipe), or None when this log is not piped."""
        pair = self._pairs.get(name)
        return "/dev/fd/%d" % pair[1] if pair else None

    @property
    def fds(self):
        """The write ends httpd must inherit."""
        return tuple(w for _, w in self._pairs.values())

    def start(self, error_out, access_out):
        """After httpd started: drop our write ends (so EOF comes when the
        last Apache process is gone) and copy each pipe to its stream."""
        outs = {"error": error_out, "access": access_out}
        for name, (r, w) in self._pairs.items():
            os.close(w)
            fmt = formatter_for(outs[name]) if name == "error" else None
            t = threading.Thread(target=_pump, args=(r, outs[name], fmt), daemon=True,
                                 name="pyhost-%s-log" % name)
            t.start()
            self._pumps.append(t)

    def close(self, timeout=5.0):
        """Waits (bounded) for what Apache wrote last to reach the terminal."""
        for t in self._pumps:
            t.join(timeout)

    def discard(self):
        """httpd was never started: close both ends."""
        for r, w in self._pairs.values():
            os.close(r)
            os.close(w)
        self._pairs.clear()


def _pump(fd, out, fmt=None):
    # Line by line, so a line from Apache and one from pyhost never mix.
    with os.fdopen(fd, "rb", buffering=0) as src:
        pending = b""
        while True:
            try:
                chunk = src.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut:
                _write(out, _format(pending[:cut], fmt))
                pending = pending[cut:]
        if pending:
            _write(out, _format(pending, fmt))


def _format(data, fmt):
    if fmt is None:
        return data
    lines = data.decode("utf-8", "replace").splitlines()
    return ("\n".join(fmt(line) for line in lines) + "\n").encode("utf-8")


def _write(out, data):
    try:
        out.buffer.write(data) if hasattr(out, "buffer") else out.write(data.decode("utf-8", "replace"))
        out.flush()
    except (OSError, ValueError):
        pass  # our own stdout is gone (closed terminal): nothing to tell
