# Daemon-mode scenarios: where and as whom the app runs, slow and stuck
# requests, streaming both ways, and memory growth.
import json
import os
import sys
import time

_counter = [0]
_hoard = []


def _query(environ):
    out = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def info(environ, start_response):
    _counter[0] += 1
    body = json.dumps({
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "cwd": os.getcwd(),
        "path": sys.path,
        "prefix": sys.prefix,
        "count": _counter[0],
        "umask": os.umask(0o022),
        "lang": os.environ.get("LANG"),
        "process_group": environ.get("mod_wsgi.process_group"),
        "application_group": environ.get("mod_wsgi.application_group"),
        "multithread": environ.get("wsgi.multithread"),
        "multiprocess": environ.get("wsgi.multiprocess"),
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING"),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "x_test": environ.get("HTTP_X_TEST"),
        "authorization": environ.get("HTTP_AUTHORIZATION"),
        "setenv": environ.get("PYHOST_SETENV"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("X-Daemon-Pid", str(os.getpid()))])
    return [body]


def sleep(environ, start_response):
    time.sleep(float(_query(environ).get("t", "1")))
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-Daemon-Pid", str(os.getpid()))])
    return [b"slept"]


def spin(environ, start_response):
    # Short sleeps: an asynchronous exception gets in between them.
    until = time.time() + float(_query(environ).get("t", "1"))
    while time.time() < until:
        time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"spun"]


def echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    inp = environ["wsgi.input"]

    def gen():
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            yield chunk
    return gen()


def stream(environ, start_response):
    n = int(_query(environ).get("n", "100"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"chunk %d\n" % i for i in range(n))


def slowstream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first\n"
        time.sleep(float(_query(environ).get("t", "1")))
        yield b"second\n"
    return gen()


def sendfile(environ, start_response):
    path = environ["PYHOST_DATA_FILE"] if "PYHOST_DATA_FILE" in environ else \
        _query(environ)["path"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(path, "rb"), 65536)


def grow(environ, start_response):
    _hoard.append(bytearray(int(_query(environ).get("mb", "10")) << 20))
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-Daemon-Pid", str(os.getpid()))])
    return [b"grown"]


def late_error(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial" * 1000
        raise RuntimeError("pyhost-test-late-error")
    return gen()


def raises(environ, start_response):
    raise RuntimeError("pyhost-test-daemon-raises")


def segv(environ, start_response):
    import ctypes
    ctypes.string_at(0)  # a crash in C code: SIGSEGV


def status(environ, start_response):
    code = _query(environ).get("code", "404")
    start_response(code + " Custom", [("Content-Type", "text/plain")])
    return [b"app body for " + code.encode()]


ROUTES = {
    "/info": info, "/sleep": sleep, "/spin": spin, "/echo": echo,
    "/stream": stream, "/slowstream": slowstream, "/file": sendfile,
    "/grow": grow, "/late-error": late_error, "/raises": raises,
    "/status": status, "/segv": segv,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route"]
    return route(environ, start_response)
