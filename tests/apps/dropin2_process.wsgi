# Reports what WSGIRestrictSignal and the resource options of
# WSGIDaemonProcess change in the process serving the request: what
# signal.signal() did, the rlimits, the nice value, this thread's stack
# size, and the buffer sizes of the process's UNIX sockets.
import ctypes
import json
import os
import resource
import signal
import socket
import stat
import time


def _stack_size():
    libc = ctypes.CDLL(None)
    attr = ctypes.create_string_buffer(128)   # pthread_attr_t: 56 bytes on x86-64
    size = ctypes.c_size_t()
    libc.pthread_self.restype = ctypes.c_ulong
    if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr):
        return None
    libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
    libc.pthread_attr_destroy(attr)
    return size.value


def _unix_sockets():
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.family == socket.AF_UNIX:
                out.append({
                    "name": s.getsockname() if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) else "",
                    "listening": bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
                    "sndbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                    "rcvbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                })
        finally:
            s.close()
    return out


def _handler(signum, frame):
    pass


def application(environ, start_response):
    if environ.get("QUERY_STRING", "").startswith("burn="):
        # CPU time, for cpu-time-limit
        end = time.process_time() + float(environ["QUERY_STRING"][5:])
        while time.process_time() < end:
            pass
    before = signal.getsignal(signal.SIGUSR2)
    try:
        returned = signal.signal(signal.SIGUSR2, _handler)
    except ValueError:   # not the main thread: Python's own refusal
        returned = None
    installed = signal.getsignal(signal.SIGUSR2) is _handler
    if installed:   # the old code let it through: put the default back
        signal.signal(signal.SIGUSR2, before if before is not None else signal.SIG_DFL)
    out = {
        "pid": os.getpid(),
        "signal_returned_handler": returned is _handler,
        "signal_installed": installed,
        "rlimit_cpu": list(resource.getrlimit(resource.RLIMIT_CPU)),
        "rlimit_as": list(resource.getrlimit(resource.RLIMIT_AS)),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "stack_size": _stack_size(),
        "sockets": _unix_sockets(),
    }
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
