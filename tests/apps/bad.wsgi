# Misbehaving applications, one per PATH_INFO. Each must end its request with
# a 500 (or a cut response once headers are out) and exactly one PYH entry,
# and the server must keep serving. /ok is the control.
import sys


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"still serving"]


def raises(environ, start_response):
    raise RuntimeError("pyhost-test-boom-raises")


def raises_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("pyhost-test-boom-after-start")


def returns_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "a str, not bytes"


def returns_list_of_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str in a list"]


def returns_none(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return None


def status_abc(environ, start_response):
    start_response("abc", [("Content-Type", "text/plain")])
    return [b"bad status"]


def status_20(environ, start_response):
    start_response("20 OK", [("Content-Type", "text/plain")])
    return [b"bad status"]


def status_bytes(environ, start_response):
    start_response(b"200 OK", [("Content-Type", "text/plain")])
    return [b"bytes status"]


def header_name_nonlatin1(environ, start_response):
    start_response("200 OK", [("X-\u20ac", "v")])
    return [b"bad header"]


def header_value_nonlatin1(environ, start_response):
    start_response("200 OK", [("X-Euro", "\u20ac")])
    return [b"bad header"]


def header_value_crlf(environ, start_response):
    start_response("200 OK", [("X-Split", "a\r\nX-Injected: yes")])
    return [b"bad header"]


def header_value_lf(environ, start_response):
    start_response("200 OK", [("X-Split", "a\nX-Injected: yes")])
    return [b"bad header"]


def header_name_crlf(environ, start_response):
    start_response("200 OK", [("X-Bad\r\nX-Injected", "yes")])
    return [b"bad header"]


def header_value_bytes(environ, start_response):
    start_response("200 OK", [("X-Bytes", b"value")])
    return [b"bad header"]


def headers_not_list(environ, start_response):
    start_response("200 OK", "Content-Type: text/plain")
    return [b"bad headers"]


def no_start_response(environ, start_response):
    return [b"never called start_response"]


def start_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"twice"]


def str_after_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"bytes first " * 200
    yield "then a str"


def raises_after_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"bytes first " * 200
    raise RuntimeError("pyhost-test-boom-mid-stream")


def write_str(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write("a str to write()")
    return []


def close_raises(environ, start_response):
    class Body:
        def __iter__(self):
            yield b"body then "

        def close(self):
            raise RuntimeError("pyhost-test-boom-in-close")

    start_response("200 OK", [("Content-Type", "text/plain")])
    return Body()


def content_length_invalid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "abc")])
    return [b"bad length"]


def content_length_negative(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "-1")])
    return [b"bad length"]


def _note_pid(environ):
    import os
    token = environ.get("QUERY_STRING", "")
    if token.isalnum():
        with open(os.path.join("@STATE_DIR@", "pid-" + token), "w") as f:
            f.write(str(os.getpid()))


def sys_exit(environ, start_response):
    _note_pid(environ)
    sys.exit(3)


def keyboard_interrupt(environ, start_response):
    _note_pid(environ)
    raise KeyboardInterrupt("pyhost-test-keyboard-interrupt")


def base_exception(environ, start_response):
    _note_pid(environ)

    class Custom(BaseException):
        pass
    raise Custom("pyhost-test-base-exception")


def start_missing_headers(environ, start_response):
    start_response("200 OK")
    return [b"unreachable"]


def start_too_many(environ, start_response):
    start_response("200 OK", [], None, 1)
    return [b"unreachable"]


def start_unknown_keyword(environ, start_response):
    start_response("200 OK", [], exc=None)
    return [b"unreachable"]


def start_duplicate_argument(environ, start_response):
    start_response("200 OK", [], status="200 OK")
    return [b"unreachable"]


def keywords(environ, start_response):
    # PEP 3333 names the arguments; a caller may pass them by name.
    start_response(status="200 OK",
                   response_headers=[("Content-Type", "text/plain")],
                   exc_info=None)
    return [b"keywords ok"]


CASES = {
    "/sys-exit": sys_exit,
    "/keyboard-interrupt": keyboard_interrupt,
    "/base-exception": base_exception,
    "/content-length-invalid": content_length_invalid,
    "/content-length-negative": content_length_negative,
    "/ok": ok,
    "/start-missing-headers": start_missing_headers,
    "/start-too-many": start_too_many,
    "/start-unknown-keyword": start_unknown_keyword,
    "/start-duplicate-argument": start_duplicate_argument,
    "/keywords": keywords,
    "/raises": raises,
    "/raises-after-start": raises_after_start,
    "/returns-str": returns_str,
    "/returns-list-of-str": returns_list_of_str,
    "/returns-none": returns_none,
    "/status-abc": status_abc,
    "/status-20": status_20,
    "/status-bytes": status_bytes,
    "/header-name-nonlatin1": header_name_nonlatin1,
    "/header-value-nonlatin1": header_value_nonlatin1,
    "/header-value-crlf": header_value_crlf,
    "/header-value-lf": header_value_lf,
    "/header-name-crlf": header_name_crlf,
    "/header-value-bytes": header_value_bytes,
    "/headers-not-list": headers_not_list,
    "/no-start-response": no_start_response,
    "/start-twice": start_twice,
    "/str-after-headers": str_after_headers,
    "/raises-after-headers": raises_after_headers,
    "/write-str": write_str,
    "/close-raises": close_raises,
}


def application(environ, start_response):
    return CASES[environ.get("PATH_INFO", "")](environ, start_response)
