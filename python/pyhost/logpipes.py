"""The terminal's logs for `pyhost serve`: Apache writes its error and
access logs into pipes that pyhost made and reads, instead of reopening
/dev/stderr and /dev/stdout itself. Reopening fails when the terminal belongs
to another user (`runuser -u nobody -- pyhost serve`: AH00091) and, with
output redirected to a file, starts writing at offset 0 over pyhost's own
lines."""

import os
import threading


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
            t = threading.Thread(target=_pump, args=(r, outs[name]), daemon=True,
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


def _pump(fd, out):
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
                _write(out, pending[:cut])
                pending = pending[cut:]
        if pending:
            _write(out, pending)


def _write(out, data):
    try:
        out.buffer.write(data) if hasattr(out, "buffer") else out.write(data.decode("utf-8", "replace"))
        out.flush()
    except (OSError, ValueError):
        pass  # our own stdout is gone (closed terminal): nothing to tell
