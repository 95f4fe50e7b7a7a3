# start_response's exc_info argument, well and badly formed, at each point
# of a response. PATH_INFO is /<kind>/<when>[/caught]:
#   kind  which exc_info the app passes (KINDS below)
#   when  first:  exc_info on the first start_response call
#         before: a second call, after start_response but before any body
#         after:  a second call once body data (and so the headers) went out
#   caught  the app catches what start_response raises and reports its type
#           in the body (only with "after", where start_response must raise)
# /raw-restore/<what>/<when> is a C extension's bug, not an app's: it puts
# junk in CPython's error state directly (PyErr_Restore through ctypes),
# which the server's own error handling must survive.
# /pid and /file (a wsgi.file_wrapper response) are the follow-up requests
# that check the process that served a bad request is intact. Every request
# given ?<token> writes its pid to state/pid-<token>.
import os
import sys

DATA_FILE = "@DATA_FILE@"


def _real():
    try:
        raise ValueError("pyhost-test-excinfo-real")
    except ValueError:
        return sys.exc_info()


def _tb_of_another():
    try:
        raise KeyError("another")
    except KeyError:
        return sys.exc_info()[2]


def _value():
    return _real()[1]


KINDS = {
    # sys.exc_info() outside an except block: no exception
    "none3": lambda: sys.exc_info(),
    "real": _real,
    "real-tb-none": lambda: (ValueError, _value(), None),
    "real-other-tb": lambda: (ValueError, _value(), _tb_of_another()),
    "ints": lambda: (1, 2, 3),
    "str-value": lambda: (ValueError, "x", None),
    "type-mismatch": lambda: (KeyError, _value(), None),
    "type-not-class": lambda: ("ValueError", _value(), None),
    "int-type-value": lambda: (int, 5, None),
    "none-type": lambda: (None, _value(), None),
    "class-as-value": lambda: (ValueError, ValueError, None),
    "bad-tb": lambda: (ValueError, _value(), "not a traceback"),
    "not-tuple": lambda: [ValueError, _value(), None],
    "short-tuple": lambda: (ValueError, _value()),
    "str": lambda: "oops",
}

HEADERS = [("Content-Type", "text/plain")]


def _note_pid(environ):
    token = environ.get("QUERY_STRING", "")
    if token.isalnum():
        with open(os.path.join("@STATE_DIR@", "pid-" + token), "w") as f:
            f.write(str(os.getpid()))


def first(exc_info, start_response):
    start_response("200 OK", HEADERS + [("X-Pid", str(os.getpid()))], exc_info)
    return [b"first call"]


def before(exc_info, start_response):
    start_response("200 OK", HEADERS + [("X-First", "yes")])
    start_response("500 Error Page", HEADERS + [("X-Second", "yes")], exc_info)
    return [b"error page"]


def after(exc_info, start_response, caught=False):
    start_response("200 OK", HEADERS + [("X-Pid", str(os.getpid()))])
    yield b"partial-" * 512
    if not caught:
        start_response("500 Too Late", HEADERS, exc_info)
        yield b"must-not-be-sent"
        return
    try:
        start_response("500 Too Late", HEADERS, exc_info)
    except BaseException as e:  # noqa: what start_response raised, reported
        # Touch it the way error handlers do: a broken exception object or
        # traceback would show (or crash) here.
        import traceback
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        yield ("caught:%s:%s" % (type(e).__name__, len(text) > 0)).encode()
        return
    yield b"not-raised"


RAW = {"none3": (None, None, None), "ints": (1, 2, 3)}


def _raw_restore(what):
    import ctypes
    api = ctypes.pythonapi
    objs = RAW[what]
    for o in objs:  # PyErr_Restore steals a reference to each
        api.Py_IncRef(ctypes.py_object(o))
    api.PyErr_Restore.argtypes = [ctypes.py_object] * 3
    api.PyErr_Restore.restype = None
    api.PyErr_Restore(*objs)  # ctypes sees the error set and raises it


def raw_restore(what, when, start_response):
    if when == "after":
        start_response("200 OK", HEADERS + [("X-Pid", str(os.getpid()))])
        yield b"partial-" * 512
    _raw_restore(what)
    yield b"must-not-be-sent"


def pid(environ, start_response):
    start_response("200 OK", HEADERS + [("X-Pid", str(os.getpid()))])
    return [str(os.getpid()).encode()]


def file(environ, start_response):
    size = os.path.getsize(DATA_FILE)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size)),
                              ("X-Pid", str(os.getpid()))])
    return environ["wsgi.file_wrapper"](open(DATA_FILE, "rb"), 32768)


def application(environ, start_response):
    _note_pid(environ)
    parts = environ.get("PATH_INFO", "").strip("/").split("/")
    if parts == ["pid"]:
        return pid(environ, start_response)
    if parts == ["file"]:
        return file(environ, start_response)
    if parts[0] == "raw-restore":
        return raw_restore(parts[1], parts[2], start_response)
    kind, when = parts[0], parts[1]
    caught = parts[2:] == ["caught"]
    exc_info = KINDS[kind]()
    if when == "first":
        return first(exc_info, start_response)
    if when == "before":
        return before(exc_info, start_response)
    return after(exc_info, start_response, caught)
