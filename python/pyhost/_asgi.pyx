# cython: language_level=3
# cython: subinterpreters_compatible=shared_gil
"""ASGI, the loop side (DESIGN rule 8): one event loop per interpreter per
process on its own thread, the scope and message objects, receive() and
send(), message checks, and the lifespan protocol.

Every application group (interpreter) imports its own copy of this module:
it is built with module state (Cython's subinterpreters_compatible), so its
classes and globals are per interpreter (its only C-level global is the
constant function table below). It declares shared_gil only: in a
sub-interpreter with its own GIL and allocator it served, but the process
crashed at exit (Py_FinalizeEx freed a tuple from another interpreter's
allocator), so ASGI groups share the GIL (asgi.c, interp.c). mod_pyhost's asgi.c reaches this module only through the capsule _C_API
(a pyh_asgi_bridge, module/asgi_api.h) and gives it a pyh_asgi_host in
return. The Apache worker thread that owns a request does its I/O: send()
and receive() post work to it and wait for the completion, which the
worker queues and signals on an eventfd this loop watches.
"""

import asyncio
import concurrent.futures
import os
import stat
import threading
import traceback

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_New
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdlib cimport free, malloc
from libc.string cimport strcmp, strdup
from posix.unistd cimport read

from pyhost.includes.asgi cimport (
    PYH_ASGI_API_VERSION, PYH_ASGI_CAPSULE, PYH_ASGI_DONE, PYH_ASGI_FINISHED,
    PYH_ASGI_GONE, PYH_ASGI_READ, PYH_ASGI_SEND, PYH_ASGI_WS_ACCEPT, PYH_ASGI_WS_CLOSE,
    pyh_asgi_bridge, pyh_asgi_header,
    pyh_asgi_host, pyh_asgi_scope_in, pyh_asgi_xfer,
)

# module/pyhost.h's PYH_LIFESPAN_* and PYH_LOOP_*, syslog levels
cdef enum:
    LIFESPAN_AUTO = 0
    LIFESPAN_ON = 1
    LIFESPAN_OFF = 2
    LOOP_AUTO = 0
    LOOP_ASYNCIO = 1
    LOOP_UVLOOP = 2
    LOG_ERR = 3
    LOG_WARNING = 4
    LOG_INFO = 6
    # the host's lifespan_state (module/metrics.h's PYH_MLS_*)
    LS_STARTING = 1
    LS_READY = 2
    LS_FAILED = 3
    LS_STOPPED = 4


class ClientDisconnected(OSError):
    """send() after the client went away (ASGI www spec 2.4)."""


cdef str _traceback(exc):
    # Without the bridge's own frames (Request.run awaiting the app, ...):
    # the traceback starts where the app's code does, as for WSGI.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.endswith("_asgi.pyx"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


cdef void _log(Loop lp, int level, str msg):
    data = msg.encode("utf-8", "replace")
    lp.host.log(lp.host.ctx, level, data)


# ---- the loop --------------------------------------------------------------

def _run_loop(loop, started):
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        asyncio.set_event_loop(None)


cdef class Loop:
    def __cinit__(self):
        self.lifespans = {}

    def _drain(self):
        self.drain()

    cdef void drain(self) noexcept:
        cdef char buf[8]
        cdef pyh_asgi_xfer *x
        cdef pyh_asgi_xfer *nxt
        cdef Request req
        if read(self.host.wake_fd, buf, 8) < 0:
            pass  # EAGAIN: a completion raced the last drain; take it anyway
        x = self.host.take_completed(self.host.ctx)
        while x != NULL:
            nxt = x.taken_next
            if x.owner == NULL:
                # only a GONE completion can outlive its request object;
                # it holds its own reference on the xfer
                self.host.release(x)
                x = nxt
                continue
            # alive: every queued SEND or READ completion holds a posted
            # reference, and a GONE one an xfer reference (owner is
            # cleared when the request object dies)
            req = <Request>x.owner
            req.completed(x.taken)
            if x.taken & PYH_ASGI_GONE:
                self.host.release(x)  # req still holds its own
            req = None
            x = nxt

    def lifespan_for(self, app, int mode, name):
        ls = self.lifespans.get(id(app))
        if ls is None or ls.app is not app:
            ls = Lifespan(self, app, mode, name)
            self.lifespans[id(app)] = ls
        return ls


cdef object _new_loop(Loop lp, int loop_kind, str group):
    if loop_kind == LOOP_ASYNCIO:
        return asyncio.new_event_loop()
    if group:
        # uvloop is a default Cython module: it loads in one interpreter
        # per process, the first to import it, which must stay the main one
        import importlib.util
        if importlib.util.find_spec("uvloop") is not None:
            _log(lp, LOG_INFO,
                 "PYH0222: application group '%s': uvloop does not load in "
                 "a sub-interpreter; its ASGI event loop is asyncio's" % group)
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        if loop_kind == LOOP_UVLOOP:
            raise RuntimeError(
                "ASGIEventLoop uvloop: uvloop is not installed in this "
                "Python (pip install uvloop)")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


cdef object loop_start(const pyh_asgi_host *host, int loop_kind, const char *group):
    cdef Loop lp = Loop()
    lp.host = host
    name = group.decode("utf-8", "replace")
    loop = _new_loop(lp, loop_kind, name)
    lp.loop = loop
    loop.add_reader(host.wake_fd, lp._drain)
    loop.call_soon(_lag_tick, lp, loop.time())
    started = threading.Event()
    # A sub-interpreter with its own GIL allows no daemon threads; it is
    # ended only after loop_stop joined this one (asgi.c, interp.c).
    lp.thread = threading.Thread(target=_run_loop, args=(loop, started),
                                 name="pyhost-asgi-loop", daemon=not name)
    lp.thread.start()
    started.wait()
    return lp


# How late a callback runs is the loop's lag (pyhost_asgi_loop_lag_seconds):
# one timer every LAG_INTERVAL, measured against when it was due.
cdef double LAG_INTERVAL = 0.25


def _lag_tick(Loop lp, double due):
    aloop = lp.loop
    now = aloop.time()
    lp.host.loop_lag(lp.host.ctx, <long long>((now - due) * 1e6) if now > due else 0)
    aloop.call_at(now + LAG_INTERVAL, _lag_tick, lp, now + LAG_INTERVAL)


cdef void _lifespan_state(Loop lp, bytes name, int state):
    lp.host.lifespan_state(lp.host.ctx, name, state)


cdef int loop_stop(object loop, double timeout) except -1:
    cdef Loop lp = <Loop>loop
    aloop = lp.loop

    async def shutdown_all():
        await asyncio.gather(*[ls.shutdown() for ls in list(lp.lifespans.values())],
                             return_exceptions=True)

    fut = asyncio.run_coroutine_threadsafe(shutdown_all(), aloop)
    try:
        fut.result(timeout)
    except concurrent.futures.TimeoutError:
        _log(lp, LOG_WARNING, "PYH0209: ASGI lifespan shutdown did not finish "
                              "within %g s; stopping the loop anyway" % timeout)
    aloop.call_soon_threadsafe(aloop.stop)
    lp.thread.join(timeout)
    if not lp.thread.is_alive():
        aloop.close()
    lp.lifespans.clear()
    return 0


# ---- lifespan --------------------------------------------------------------

class Lifespan:
    """The lifespan protocol for one app: startup once per process, state
    shared (shallow-copied) into every request's scope, shutdown at exit.
    Made on any thread; its asyncio objects are made on the loop."""

    def __init__(self, lp, app, mode, name):
        self.lp = lp
        self.app = app
        self.mode = mode
        self.name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        self.raw_name = name if isinstance(name, bytes) else self.name.encode()
        self.state = {}
        self.failed = False
        self.supported = True
        self.ready_ev = None
        self.task = None
        self.sent_startup = False
        self.shutting_down = False

    def report(self, int state):
        _lifespan_state(<Loop>self.lp, self.raw_name, state)

    def is_failed(self):
        return self.failed and self.ready_ev is not None and self.ready_ev.is_set()

    async def ready(self):
        if self.ready_ev is None:
            self.ready_ev = asyncio.Event()
            self.shutdown_ev = asyncio.Event()
            self.shut_done = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self.main())
            self.report(LS_STARTING)
        await self.ready_ev.wait()

    async def main(self):
        scope = {"type": "lifespan",
                 "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as e:
            if self.failed:
                pass  # lifespan.startup.failed was logged already
            elif not self.ready_ev.is_set():
                if self.mode == LIFESPAN_AUTO:
                    self.supported = False
                    _log(self.lp, LOG_INFO,
                         "PYH0206: '%s' does not take the ASGI lifespan "
                         "protocol (%s: %s); serving it without "
                         "(ASGILifespan auto)" % (self.name, type(e).__name__, e))
                else:
                    self.failed = True
                    _log(self.lp, LOG_ERR,
                         "PYH0205: ASGI lifespan startup of '%s' raised; its "
                         "requests get 503: %s" % (self.name, _traceback(e)))
            else:
                _log(self.lp, LOG_ERR,
                     "PYH0208: ASGI lifespan of '%s' raised%s: %s"
                     % (self.name, " at shutdown" if self.shutting_down else "",
                        _traceback(e)))
        finally:
            if not self.ready_ev.is_set():
                self.report(LS_FAILED if self.failed else LS_READY)
            elif self.shutting_down:
                self.report(LS_STOPPED)
            self.ready_ev.set()
            self.shut_done.set()

    async def receive(self):
        if not self.sent_startup:
            self.sent_startup = True
            return {"type": "lifespan.startup"}
        await self.shutdown_ev.wait()
        return {"type": "lifespan.shutdown"}

    async def send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.report(LS_READY)
            self.ready_ev.set()
        elif kind == "lifespan.startup.failed":
            self.failed = True
            _log(self.lp, LOG_ERR,
                 "PYH0205: ASGI lifespan startup of '%s' failed; its requests "
                 "get 503: %s" % (self.name, message.get("message", "")))
            self.report(LS_FAILED)
            self.ready_ev.set()
        elif kind == "lifespan.shutdown.complete":
            self.shut_done.set()
        elif kind == "lifespan.shutdown.failed":
            _log(self.lp, LOG_ERR,
                 "PYH0208: ASGI lifespan shutdown of '%s' failed: %s"
                 % (self.name, message.get("message", "")))
            self.shut_done.set()
        else:
            raise RuntimeError("unknown lifespan message type %r" % (kind,))

    async def shutdown(self):
        if (self.task is None or self.task.done() or self.failed
                or not self.supported):
            return
        self.shutting_down = True
        self.shutdown_ev.set()
        await self.shut_done.wait()


cdef int lifespan_startup(object loop, object app, int mode, const char *name,
                          double timeout) except -1:
    cdef Loop lp = <Loop>loop
    ls = lp.lifespan_for(app, mode, name)
    fut = asyncio.run_coroutine_threadsafe(ls.ready(), lp.loop)
    try:
        fut.result(timeout)  # waits with the GIL released
    except concurrent.futures.TimeoutError:
        _log(lp, LOG_WARNING,
             "PYH0207: ASGI lifespan startup of '%s' did not finish within "
             "%g s; its requests wait for it" % (ls.name, timeout))
    return 1 if ls.failed else 0


# ---- requests --------------------------------------------------------------

cdef inline dict _disconnect():
    return {"type": "http.disconnect"}


cdef inline bint _is_token(bytes name):
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(name)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    cdef unsigned char c
    if n == 0:
        return False
    for i in range(n):
        c = p[i]
        if c <= 32 or c >= 127 or c in b'()<>@,;:\\"/[]?={}':
            return False
    return True


cdef inline bint _is_field_value(bytes value):
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if c == 13 or c == 10 or c == 0 or (c < 32 and c != 9) or c == 127:
            return False
    return True


cdef inline bint _is_digits(bytes value):
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    if n == 0 or n > 18:
        return False
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return False
    return True


# no_gc_clear: a Request in a reference cycle (Django's request handling
# makes them: exceptions, tracebacks, contexts) is freed by the cyclic GC,
# whose tp_clear would set `lp` to None before __dealloc__ reads
# lp.host to let go of the xfer: a crash while garbage-collecting.
@cython.no_gc_clear
cdef class Request:
    def __cinit__(self):
        self.hold = []
        self.disconnect_waiters = []

    def __dealloc__(self):
        if self.hdrs != NULL:
            free(self.hdrs)
        if self.x != NULL:
            self.x.owner = NULL  # a queued GONE completion finds no request
            self.lp.host.release(self.x)

    cdef object invalid(self, str problem):
        if self.problem is None:
            self.problem = problem
        return RuntimeError("invalid ASGI message: " + problem)

    cdef void completed(self, unsigned bits) noexcept:
        cdef pyh_asgi_xfer *x = self.x
        try:
            if bits & PYH_ASGI_FINISHED:
                self.finished = True
            if bits & PYH_ASGI_GONE:
                # the worker saw the client leave: receive() returns
                # http.disconnect, send() raises ClientDisconnected
                self.client_gone = True
            if bits & PYH_ASGI_SEND:
                self.hold = []
                if self.hdrs != NULL:
                    free(self.hdrs)
                    self.hdrs = NULL
                x.headers = NULL
                x.body = NULL
                w = self.send_waiter
                self.send_waiter = None
                if x.send_failed:
                    self.client_gone = True
                if w is not None and not w.done():
                    if x.send_failed:
                        w.set_exception(ClientDisconnected("the client went away"))
                    else:
                        w.set_result(None)
                Py_DECREF(self)
            if bits & PYH_ASGI_READ:
                w = self.recv_waiter
                self.recv_waiter = None
                if x.read_failed:
                    self.body_done = True
                    msg = _disconnect()
                else:
                    if x.read_eos:
                        self.body_done = True
                    msg = {"type": "http.request",
                           "body": PyBytes_FromStringAndSize(x.rbuf, x.read_len),
                           "more_body": not x.read_eos}
                if w is not None and not w.done():
                    w.set_result(msg)
                Py_DECREF(self)
            if self.finished or self.client_gone:
                waiters = self.disconnect_waiters
                self.disconnect_waiters = []
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        except BaseException as e:
            _log(self.lp, LOG_ERR, "PYH0214: ASGI bridge error: " + _traceback(e))

    async def receive(self):
        if self.finished or self.client_gone:
            return _disconnect()
        if not self.body_done:
            if not self.has_body:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.recv_waiter is not None:
                raise RuntimeError("receive() called while another receive() is waiting")
            w = self.lp.loop.create_future()
            self.recv_waiter = w
            Py_INCREF(self)
            if self.lp.host.post(self.x, PYH_ASGI_READ) < 0:
                Py_DECREF(self)
                self.recv_waiter = None
                self.finished = True
                return _disconnect()
            return await w
        # the body is read: the next event is the end of the response
        w = self.lp.loop.create_future()
        self.disconnect_waiters.append(w)
        await w
        return _disconnect()

    cdef int set_headers(self, headers) except -1:
        cdef list items
        cdef Py_ssize_t i, n
        cdef pyh_asgi_header *h
        try:
            items = list(headers)
        except TypeError:
            raise self.invalid("headers must be an iterable of [name, value] "
                               "pairs, not %s" % type(headers).__name__)
        n = len(items)
        h = <pyh_asgi_header *>malloc((n if n else 1) * sizeof(pyh_asgi_header))
        if h == NULL:
            raise MemoryError()
        if self.hdrs != NULL:
            free(self.hdrs)
        self.hdrs = h
        for i in range(n):
            item = items[i]
            try:
                name, value = item
            except (TypeError, ValueError):
                raise self.invalid("header %d is not a [name, value] pair: %r" % (i, item))
            if type(name) is not bytes or type(value) is not bytes:
                raise self.invalid("header %d: name and value must be bytes, not "
                                   "%s and %s" % (i, type(name).__name__,
                                                  type(value).__name__))
            if not _is_token(name):
                raise self.invalid("header name %r is not an HTTP token" % (name,))
            if not _is_field_value(value):
                raise self.invalid("header %r has a value with CR, LF or another "
                                   "control character" % (name,))
            if name.lower() == b"content-length" and not _is_digits(value):
                raise self.invalid("content-length %r is not a number" % (value,))
            self.hold.append(name)
            self.hold.append(value)
            h[i].name = PyBytes_AS_STRING(name)
            h[i].name_len = PyBytes_GET_SIZE(name)
            h[i].value = PyBytes_AS_STRING(value)
            h[i].value_len = PyBytes_GET_SIZE(value)
        self.x.headers = h
        self.x.nheaders = <int>n
        return 0

    async def send(self, message):
        try:
            kind = message["type"]
        except (TypeError, KeyError, IndexError):
            raise self.invalid("a message must be a dict with a 'type', not %r"
                               % (message,))
        if kind == "http.response.body":
            w = self.post_body(message, "http.response")
            if w is not None:
                await w
            return
        if kind == "http.response.early_hint":
            await self.send_early_hint(message)
            return
        if kind == "http.response.pathsend" or kind == "http.response.zerocopysend":
            await self.send_file(message, kind)
            return
        if kind == "http.response.start":
            self.start_response(message, "http.response")
            return
        raise self.invalid("unknown message type %r" % (kind,))

    # ---- http.response.start / body (and a WebSocket's denial response,
    # ---- websocket.http.response.*: `prefix` names the messages) -------

    cdef int start_response(self, message, str prefix) except -1:
        if self.started:
            raise self.invalid("%s.start sent twice" % prefix)
        status = message.get("status")
        if type(status) is not int:
            raise self.invalid("status must be an int, not %s"
                               % type(status).__name__)
        if not 100 <= status <= 999:
            raise self.invalid("status %d is not a 3-digit HTTP status" % status)
        self.set_headers(message.get("headers", ()))
        self.status = status
        self.started = True
        self.start_pending = True
        return 0

    cdef object post_body(self, message, str prefix):
        """Checks a body message and posts it; returns the future send()
        waits on, or None when there was nothing to post. (Not a
        coroutine: one per body would cost the hot path a frame.)"""
        cdef pyh_asgi_xfer *x = self.x
        if not self.started:
            raise self.invalid("%s.body before %s.start" % (prefix, prefix))
        if self.complete:
            raise self.invalid("%s.body after the response was complete" % prefix)
        body = message.get("body", b"")
        if type(body) is not bytes:
            if isinstance(body, (bytearray, memoryview)):
                body = bytes(body)
            else:
                raise self.invalid("body must be bytes, not %s"
                                   % type(body).__name__)
        more = bool(message.get("more_body", False))
        if self.client_gone or self.finished:
            raise ClientDisconnected("the client went away")
        if more and not body and not self.start_pending:
            return None
        x.status = self.status if self.start_pending else 0
        if not self.start_pending:
            x.nheaders = 0
        x.body = PyBytes_AS_STRING(body)
        x.body_len = PyBytes_GET_SIZE(body)
        x.more_body = more
        self.hold.append(body)
        self.start_pending = False
        if not more:
            self.complete = True
        w = self.post_send(PYH_ASGI_SEND)
        if w is None:
            raise ClientDisconnected("the client went away")
        return w

    cdef object post_send(self, unsigned work):
        """Posts work the worker completes by waking send_waiter: the
        waiter to await, or None when the worker is gone (the client with
        it). The posted reference keeps this request alive until then."""
        w = self.lp.loop.create_future()
        self.send_waiter = w
        Py_INCREF(self)
        if self.lp.host.post(self.x, work) < 0:
            Py_DECREF(self)
            self.send_waiter = None
            self.client_gone = True
            return None
        return w

    # ---- http.response.early_hint (a 103) ------------------------------

    async def send_early_hint(self, message):
        """The links go out as Link headers of a 103 before the response;
        once the app has started its response the hint is dropped (the
        spec lets a server ignore it)."""
        cdef pyh_asgi_xfer *x = self.x
        links = message.get("links", ())
        if isinstance(links, (bytes, str)):
            raise self.invalid("early_hint's links must be an iterable of bytes, "
                               "not a single %s" % type(links).__name__)
        try:
            pairs = [(b"Link", link) for link in links]
        except TypeError:
            raise self.invalid("early_hint's links must be an iterable of bytes, not %s"
                               % type(links).__name__)
        if self.started or self.complete or not pairs:
            return
        if self.client_gone or self.finished:
            raise ClientDisconnected("the client went away")
        self.set_headers(pairs)  # checks each link like a header value
        x.status = 0
        x.body = NULL
        x.body_len = 0
        x.more_body = 1
        x.early_hint = 1
        w = self.post_send(PYH_ASGI_SEND)
        if w is None:
            x.early_hint = 0
            raise ClientDisconnected("the client went away")
        try:
            await w
        finally:
            x.early_hint = 0

    # ---- http.response.pathsend / zerocopysend (file buckets) ----------

    async def send_file(self, message, str kind):
        """The body (or, with zerocopysend's more_body, part of it) is a
        file the worker sends as a file bucket (sendfile where Apache
        uses it): a path it opens itself, or the app's descriptor, which
        it duplicates before send() returns."""
        cdef pyh_asgi_xfer *x = self.x
        cdef bytes path = None
        cdef long long offset = 0, count = -1
        cdef int fd = -1
        if not self.started:
            raise self.invalid("%s before http.response.start" % kind)
        if self.complete:
            raise self.invalid("%s after the response was complete" % kind)
        more = False
        if kind == "http.response.pathsend":
            p = message.get("path")
            if not isinstance(p, str) or not os.path.isabs(p):
                raise self.invalid("pathsend's path must be an absolute path "
                                   "(str), not %r" % (p,))
            path = os.fsencode(p)
            if b"\0" in path:
                raise self.invalid("pathsend's path contains a NUL byte")
            if not stat.S_ISREG(os.stat(path).st_mode):  # FileNotFoundError: the app's
                raise self.invalid("pathsend's path %r is not a regular file" % (p,))
        else:
            f = message.get("file")
            try:
                fd = f.fileno()
            except Exception:
                raise self.invalid("zerocopysend's file must be a file object "
                                   "with fileno(), not %s" % type(f).__name__)
            o = message.get("offset")
            c = message.get("count")
            if (o is not None and type(o) is not int) or (c is not None and type(c) is not int):
                raise self.invalid("zerocopysend's offset and count must be ints")
            offset = o if o is not None else os.lseek(fd, 0, os.SEEK_CUR)
            count = c if c is not None else -1
            if offset < 0 or (c is not None and count < 0):
                raise self.invalid("zerocopysend's offset and count must not be negative")
            more = bool(message.get("more_body", False))
        if self.client_gone or self.finished:
            raise ClientDisconnected("the client went away")
        x.status = self.status if self.start_pending else 0
        if not self.start_pending:
            x.nheaders = 0
        x.body = NULL
        x.body_len = 0
        x.more_body = more
        x.file_kind = 1 if path is not None else 2
        x.file_path = PyBytes_AS_STRING(path) if path is not None else NULL
        x.file_fd = fd
        x.file_offset = offset
        x.file_count = count
        if path is not None:
            self.hold.append(path)
        self.start_pending = False
        if not more:
            self.complete = True
        w = self.post_send(PYH_ASGI_SEND)
        if w is None:
            x.file_kind = 0
            raise ClientDisconnected("the client went away")
        try:
            await w
        finally:
            # the worker is done with them (it has duplicated the fd)
            x.file_kind = 0
            x.file_path = NULL

    async def run(self):
        err = None
        done_status = 0
        try:
            state = None
            if self.lifespan != LIFESPAN_OFF:
                ls = self.lp.lifespan_for(self.app, self.lifespan, self.name)
                await ls.ready()
                if ls.failed:
                    done_status = 503
                elif ls.supported:
                    state = ls.state
            if not done_status:
                self.scope["state"] = dict(state) if state else {}
                await self.app(self.scope, self.receive, self.send)
        except BaseException as e:
            err = e
        self.finish(err, done_status)

    def finish(self, err, int done_status):
        cdef pyh_asgi_xfer *x = self.x
        cdef bytes data
        where = "for %s %s" % (self.scope.get("method", "WebSocket"),
                               self.scope["raw_path"].decode("latin-1"))
        msg = None
        if self.client_gone and isinstance(err, ClientDisconnected):
            err = None  # the client left: not the app's fault, nothing to log
        if self.problem is not None:
            msg = "PYH0204: invalid ASGI message %s: %s" % (where, self.problem)
            if err is not None:
                msg += "\n" + _traceback(err)
        elif err is not None:
            msg = "PYH0203: exception in ASGI app %s: %s" % (where, _traceback(err))
        if not self.finished:
            x.done_status = done_status
            if msg is not None:
                data = msg.encode("utf-8", "replace")
                x.error = strdup(data)
            if self.lp.host.post(x, PYH_ASGI_DONE) == 0:
                return  # the worker logs it, with its request
            free(x.error)
            x.error = NULL
        if msg is not None:
            head, sep, rest = msg.partition("\n")
            _log(self.lp, LOG_ERR, head + " (after the response was sent)" + sep + rest)


# ---- WebSocket -------------------------------------------------------------
# The asgiref WebSocket spec on top of Request's machinery: accept, send
# and close are posted to the worker (asgi.c's WebSocket section), which
# owns the upgraded connection; receive() asks it for the next message.

cdef inline bint _ws_code_ok(int code):
    # a code the app may put in its close frame (RFC 6455 7.4, IANA)
    return code == 1000 or 1001 <= code <= 1003 or 1007 <= code <= 1014 \
        or 3000 <= code <= 4999


cdef class WebSocket(Request):
    cdef dict disconnect_message(self):
        self.disconnected = True
        return {"type": "websocket.disconnect",
                "code": self.close_code or 1006, "reason": ""}

    cdef void completed(self, unsigned bits) noexcept:
        cdef pyh_asgi_xfer *x = self.x
        if bits & ~PYH_ASGI_READ:
            Request.completed(self, bits & ~PYH_ASGI_READ)
        if not bits & PYH_ASGI_READ:
            return
        try:
            w = self.recv_waiter
            self.recv_waiter = None
            if x.ws_type == 1:
                msg = {"type": "websocket.receive",
                       "text": PyBytes_FromStringAndSize(x.rbuf, x.read_len).decode("utf-8")}
            elif x.ws_type == 2:
                msg = {"type": "websocket.receive",
                       "bytes": PyBytes_FromStringAndSize(x.rbuf, x.read_len)}
            else:
                self.close_code = x.ws_code
                msg = self.disconnect_message()
            if w is not None and not w.done():
                w.set_result(msg)
        except BaseException as e:
            _log(self.lp, LOG_ERR, "PYH0214: ASGI bridge error: " + _traceback(e))
        Py_DECREF(self)

    cdef int gone_code(self):
        # the worker left: it set the code before it did
        self.finished = True
        if not self.close_code:
            self.close_code = self.x.ws_code or 1006
        return 0

    async def receive(self):
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        if self.disconnected or self.finished or self.client_gone:
            if self.finished and not self.close_code:
                self.gone_code()
            return self.disconnect_message()
        if self.started:
            # a denial response (websocket.http.response): the connection
            # ends with it, and so does the app's wait
            w = self.lp.loop.create_future()
            self.disconnect_waiters.append(w)
            await w
            if not self.close_code:
                self.close_code = 1006
            return self.disconnect_message()
        if not self.accepted:
            raise self.invalid("receive() after websocket.connect but before "
                               "websocket.accept")
        if self.recv_waiter is not None:
            raise RuntimeError("receive() called while another receive() is waiting")
        w = self.lp.loop.create_future()
        self.recv_waiter = w
        Py_INCREF(self)
        if self.lp.host.post(self.x, PYH_ASGI_READ) < 0:
            Py_DECREF(self)
            self.recv_waiter = None
            self.gone_code()
            return self.disconnect_message()
        return await w

    async def post_and_wait(self, unsigned work):
        w = self.post_send(work)
        if w is None:
            self.gone_code()
            raise ClientDisconnected("the client went away")
        await w

    async def send(self, message):
        cdef pyh_asgi_xfer *x = self.x
        try:
            kind = message["type"]
        except (TypeError, KeyError, IndexError):
            raise self.invalid("a message must be a dict with a 'type', not %r"
                               % (message,))
        if kind == "websocket.send":
            if not self.accepted:
                raise self.invalid("websocket.send before websocket.accept")
            if self.closed:
                raise self.invalid("websocket.send after websocket.close")
            text = message.get("text")
            data = message.get("bytes")
            if (text is None) == (data is None):
                raise self.invalid("websocket.send needs exactly one of "
                                   "'text' and 'bytes'")
            if text is not None:
                if type(text) is not str:
                    raise self.invalid("text must be str, not %s" % type(text).__name__)
                body = text.encode("utf-8")
            else:
                if type(data) is not bytes:
                    if isinstance(data, (bytearray, memoryview)):
                        data = bytes(data)
                    else:
                        raise self.invalid("bytes must be bytes, not %s"
                                           % type(data).__name__)
                body = data
            if self.client_gone or self.finished or self.disconnected:
                raise ClientDisconnected("the client went away")
            x.status = 0
            x.nheaders = 0
            x.body = PyBytes_AS_STRING(body)
            x.body_len = PyBytes_GET_SIZE(body)
            x.ws_binary = data is not None
            self.hold.append(body)
            await self.post_and_wait(PYH_ASGI_SEND)
            return
        if kind == "websocket.accept":
            if self.accepted or self.closed or self.started:
                raise self.invalid("websocket.accept %s" % (
                    "sent twice" if self.accepted else "after websocket.close"
                    if self.closed else "after websocket.http.response.start"))
            sub = message.get("subprotocol")
            if sub is not None:
                if type(sub) is not str:
                    raise self.invalid("subprotocol must be str or None, not %s"
                                       % type(sub).__name__)
                subb = sub.encode("latin-1", "replace")
                if not _is_token(subb):
                    raise self.invalid("subprotocol %r is not an HTTP token" % (sub,))
                self.hold.append(subb)
                x.ws_subprotocol = PyBytes_AS_STRING(subb)
                x.ws_subprotocol_len = PyBytes_GET_SIZE(subb)
            else:
                x.ws_subprotocol = NULL
                x.ws_subprotocol_len = 0
            self.set_headers(message.get("headers", ()))
            if self.client_gone or self.finished:
                raise ClientDisconnected("the client went away")
            self.accepted = True
            await self.post_and_wait(PYH_ASGI_WS_ACCEPT)
            return
        if kind == "websocket.close":
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            if type(code) is not int or not _ws_code_ok(code):
                raise self.invalid("close code %r may not be sent (1000, "
                                   "1001-1003, 1007-1014, 3000-4999)" % (code,))
            if type(reason) is not str:
                raise self.invalid("reason must be str, not %s" % type(reason).__name__)
            rb = reason.encode("utf-8")
            if len(rb) > 123:
                raise self.invalid("close reason is %d bytes in UTF-8; at most "
                                   "123 fit a close frame" % len(rb))
            if self.closed:
                return
            if self.started:
                raise self.invalid("websocket.close after "
                                   "websocket.http.response.start")
            self.closed = True
            if not self.accepted:
                # Denied before the handshake: HTTP 403 (asgiref spec).
                if not self.finished:
                    x.done_status = 403
                    if self.lp.host.post(x, PYH_ASGI_DONE) == 0:
                        self.finished = True
                        self.close_code = 1006
                return
            if self.client_gone or self.finished or self.disconnected:
                return
            x.ws_code = code
            x.body = PyBytes_AS_STRING(rb)
            x.body_len = PyBytes_GET_SIZE(rb)
            self.hold.append(rb)
            try:
                await self.post_and_wait(PYH_ASGI_WS_CLOSE)
            except ClientDisconnected:
                pass
            return
        # The denial response extension (websocket.http.response): an
        # ordinary HTTP response instead of the 101, through Request's
        # machinery; the worker is still in its HTTP loop (asgi_serve).
        if kind == "websocket.http.response.start":
            if self.accepted or self.closed:
                raise self.invalid("websocket.http.response.start after websocket.%s"
                                   % ("accept" if self.accepted else "close"))
            self.start_response(message, "websocket.http.response")
            return
        if kind == "websocket.http.response.body":
            if self.accepted or self.closed:
                raise self.invalid("websocket.http.response.body after websocket.%s"
                                   % ("accept" if self.accepted else "close"))
            w = self.post_body(message, "websocket.http.response")
            if w is not None:
                await w
            return
        raise self.invalid("unknown message type %r" % (kind,))

    def finish(self, err, int done_status):
        if not self.accepted and not self.started and err is None \
                and not done_status and self.problem is None:
            done_status = 403  # returned without accepting: denied
        Request.finish(self, err, done_status)


cdef dict _ws_scope(const pyh_asgi_scope_in *sc):
    cdef dict scope = _scope(sc)
    cdef list subprotocols = []
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    # the HTTP response extensions do not apply to a WebSocket; tls does,
    # and the denial response is an HTTP response the worker sends as any
    scope["extensions"] = {k: v for k, v in scope["extensions"].items() if k == "tls"}
    scope["extensions"]["websocket.http.response"] = {}
    for name, value in scope["headers"]:
        if name == b"sec-websocket-protocol":
            for p in value.decode("latin-1").split(","):
                p = p.strip()
                if p:
                    subprotocols.append(p)
    scope["subprotocols"] = subprotocols
    return scope



def _start(Request req):
    req.lp.loop.create_task(req.run())


cdef dict _scope(const pyh_asgi_scope_in *sc):
    cdef int i
    cdef list headers = []
    for i in range(sc.nheaders):
        headers.append((PyBytes_FromStringAndSize(sc.headers[i].name, sc.headers[i].name_len),
                        PyBytes_FromStringAndSize(sc.headers[i].value, sc.headers[i].value_len)))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": sc.http_version.decode("latin-1"),
        "method": sc.method.decode("latin-1"),
        "scheme": sc.scheme.decode("latin-1"),
        "path": sc.path[:sc.path_len].decode("utf-8", "replace"),
        "raw_path": sc.raw_path[:sc.raw_path_len],
        "query_string": sc.query[:sc.query_len],
        "root_path": sc.root_path[:sc.root_path_len].decode("utf-8", "replace"),
        "headers": headers,
        "client": (sc.client_host.decode("latin-1"), sc.client_port),
        "server": (sc.server_host.decode("latin-1"), sc.server_port),
        "extensions": _extensions(sc),
    }


cdef dict _extensions(const pyh_asgi_scope_in *sc):
    ext = {
        # served as file buckets (Request.send_file)
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }
    if strcmp(sc.http_version, b"1.0") != 0:  # HTTP/1.0 has no interim responses
        ext["http.response.early_hint"] = {}
    if sc.tls:
        ext["tls"] = _tls(sc)
    return ext


# A module global, not a cdef one: Cython keeps cdef object globals in C
# statics shared by every interpreter's copy of this module (each import
# would replace the last one's object, freed by the wrong interpreter).
_TLS_VERSIONS = {"SSLv3": 0x300, "TLSv1": 0x301, "TLSv1.1": 0x302,
                 "TLSv1.2": 0x303, "TLSv1.3": 0x304}


cdef inline object _text(const char *s):
    return None if s == NULL else s.decode("latin-1")


cdef dict _tls(const pyh_asgi_scope_in *sc):
    """The ASGI TLS extension from mod_ssl's variables. cipher_suite is
    None: mod_ssl names the cipher (SSL_CIPHER) but does not give its
    16-bit code; the name is under "cipher_name" too (not in the spec)."""
    client = _text(sc.tls_client_cert)
    verify = _text(sc.tls_client_verify) or "NONE"
    return {
        "server_cert": _text(sc.tls_server_cert),
        "client_cert_chain": [client] if client else [],
        "client_cert_name": _text(sc.tls_client_dn) if client else None,
        "client_cert_error": (None if verify in ("NONE", "SUCCESS")
                              else verify.partition(":")[2] or verify),
        "tls_version": _TLS_VERSIONS.get(_text(sc.tls_protocol)),
        "cipher_suite": None,
        "cipher_name": _text(sc.tls_cipher),
    }


cdef int submit(object loop, object app, int lifespan, const char *name,
                const pyh_asgi_scope_in *sc, pyh_asgi_xfer *x) except -1:
    cdef Loop lp = <Loop>loop
    cdef Request req
    if lifespan != LIFESPAN_OFF:
        ls = lp.lifespans.get(id(app))
        if ls is not None and ls.app is app and ls.is_failed():
            return 503
    if sc.websocket:
        req = WebSocket.__new__(WebSocket)
    else:
        req = Request.__new__(Request)
    req.lp = lp
    req.app = app
    req.lifespan = lifespan
    req.name = name
    req.has_body = sc.has_body
    req.scope = _ws_scope(sc) if sc.websocket else _scope(sc)
    req.x = x
    x.owner = <PyObject *>req
    try:
        lp.loop.call_soon_threadsafe(_start, req)
    except BaseException:
        req.x = NULL  # asgi.c lets go of it
        raise
    return 0


# ---- the capsule asgi.c imports ------------------------------------------------

cdef pyh_asgi_bridge _bridge
_bridge.version = PYH_ASGI_API_VERSION
_bridge.loop_start = loop_start
_bridge.lifespan_startup = lifespan_startup
_bridge.submit = submit
_bridge.loop_stop = loop_stop

_C_API = PyCapsule_New(<void *>&_bridge, PYH_ASGI_CAPSULE, NULL)
