"""Real applications: a wsgiref.validate-wrapped app, Flask and Django, each
served under every MPM with nothing logged against them."""

import hashlib
import json

from harness import Workspace


def assert_clean_log(server, mark):
    text = server.log_since(mark)
    assert not server.log_entries_since(mark), text
    assert "Traceback" not in text, text
    assert "WSGIWarning" not in text and "AssertionError" not in text, text


def test_validator_get(server):
    mark = server.log_mark()
    r = server.get("/validated/get")
    assert r.status == 200, r
    assert r.body == b"validated get"
    assert_clean_log(server, mark)


def test_validator_post(server):
    mark = server.log_mark()
    body = b"first line\n" + b"rest of the body " * 1000
    r = server.post("/validated/post", body, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r
    assert r.body == b"got:" + body
    assert_clean_log(server, mark)


def test_validator_streaming(server):
    mark = server.log_mark()
    r = server.get("/validated/stream")
    assert r.status == 200, r
    assert r.body == b"written;" + b"".join(b"chunk%d;" % i for i in range(5))
    assert_clean_log(server, mark)


def test_validator_file_wrapper(server):
    mark = server.log_mark()
    r = server.get("/validated/file")
    assert r.status == 200, r
    assert r.body == Workspace.blob_bytes()
    assert_clean_log(server, mark)


def test_flask_get(server):
    mark = server.log_mark()
    r = server.get("/flask/")
    assert r.status == 200, r
    assert r.body == b"hello from flask script_root=/flask"
    assert_clean_log(server, mark)


def test_flask_json_post(server):
    mark = server.log_mark()
    payload = {"a": [1, 2, 3], "b": "caf\u00e9"}
    r = server.post("/flask/json", json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert r.json()["echo"] == payload
    assert_clean_log(server, mark)


def test_flask_chunked_upload(server):
    mark = server.log_mark()
    parts = [b"part-%d-" % i * 500 for i in range(50)]
    data = b"".join(parts)
    r = server.request("POST", "/flask/upload", body=iter(parts), encode_chunked=True,
                       headers={"Transfer-Encoding": "chunked",
                                "Content-Type": "application/octet-stream"})
    assert r.status == 200, r
    j = r.json()
    assert j["size"] == len(data)
    assert j["sha256"] == hashlib.sha256(data).hexdigest()
    assert j["input_terminated"] is True
    assert_clean_log(server, mark)


def test_flask_send_file_uses_file_wrapper(server):
    mark = server.log_mark()
    expected = Workspace.blob_bytes()
    r = server.get("/flask/file")
    assert r.status == 200, r
    assert r.body == expected
    assert r.header("Content-Length") == str(len(expected))
    assert r.header("X-File-Wrapper") == "server"
    assert_clean_log(server, mark)


def test_flask_404(server):
    r = server.get("/flask/nope")
    assert r.status == 404


def test_django_hello(server):
    mark = server.log_mark()
    r = server.get("/django/hello/")
    assert r.status == 200, r
    assert r.body == b"hello from django path=/django/hello/"
    assert_clean_log(server, mark)


def test_django_post_echo(server):
    mark = server.log_mark()
    r = server.post("/django/echo/", b"name=pyhost&x=1",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r
    j = r.json()
    assert j["method"] == "POST"
    assert j["form"] == {"name": "pyhost", "x": "1"}
    assert j["script_name"] == "/django"
    assert j["path"] == "/django/echo/"
    assert_clean_log(server, mark)


def test_django_csrf_and_404(server):
    assert server.post("/django/protected/", b"x=1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 403
    assert server.get("/django/missing/").status == 404
    # CommonMiddleware's APPEND_SLASH redirect keeps the mount point.
    r = server.get("/django/hello")
    assert r.status == 301
    assert r.header("Location").endswith("/django/hello/")
