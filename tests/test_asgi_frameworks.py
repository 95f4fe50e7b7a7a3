"""Real ASGI frameworks (issue 13 point 10): Starlette, FastAPI (pydantic
models, a lifespan-created resource used in requests), Django (async views
through Django's own ASGI handler, which refuses lifespan) and Quart, each
mounted below a prefix of one Apache per MPM, with nothing logged against
them. A framework that is not installed (the test extra leaves some out on
Pythons they do not install on) skips its tests."""

import importlib.util
import json
import os

import pytest

import harness

FRAMEWORKS = {"starlette": "starlette", "fastapi": "fastapi", "django": "django", "quart": "quart"}
HAVE = {name: importlib.util.find_spec(pkg) is not None for name, pkg in FRAMEWORKS.items()}

MOUNTS = {
    "starlette": "ASGIScriptAlias /starlette @APPS@/asgi_fw_starlette.py",
    "fastapi": "ASGIScriptAlias /fastapi @APPS@/asgi_fw_fastapi.py",
    "django": "ASGIScriptAlias /django @APPS@/asgi_fw_django/asgi.py",
    "quart": "ASGIScriptAlias /quart @APPS@/asgi_fw_quart.py",
}


def needs(name):
    return pytest.mark.skipif(not HAVE[name], reason="%s is not installed" % name)


@pytest.fixture(scope="module", params=harness.MPMS if not os.environ.get("PYHOST_TEST_MPMS")
                else [m for m in os.environ["PYHOST_TEST_MPMS"].split(",") if m in harness.MPMS])
def fw(request, workspace):
    extra = "LogLevel info\n" + "\n".join(line for name, line in MOUNTS.items() if HAVE[name]) + "\n"
    srv = harness.Apache(workspace, "asgi-fw-" + request.param, mpm=request.param, extra=extra)
    srv.start()
    yield srv
    srv.stop()


def assert_clean_log(server, mark):
    text = server.log_since(mark)
    assert not harness.CRASH_RE.search(text), text
    assert "Traceback" not in text, text
    assert not [l for l in server.log_entries_since(mark) if ":info]" not in l], text


def get_json(server, path, **kw):
    r = server.get(path, **kw)
    assert r.status == 200, r
    return json.loads(r.body)


# ---- Starlette ------------------------------------------------------------------

@needs("starlette")
def test_starlette_routes_under_the_mount(fw):
    mark = fw.log_mark()
    r = fw.get("/starlette/")
    assert (r.status, r.body) == (200, b"hello from starlette root_path=/starlette"), r
    data = get_json(fw, "/starlette/state")
    assert data["pool"] == "made-at-startup-%d" % data["pid"], data
    assert data["path"] == "/starlette/state" and data["route"] == "/state", data
    assert fw.get("/starlette/nowhere").status == 404
    assert_clean_log(fw, mark)


@needs("starlette")
def test_starlette_json_body_and_stream(fw):
    mark = fw.log_mark()
    payload = {"a": [1, 2, 3], "b": "caf\u00e9"}
    r = fw.post("/starlette/echo?x=1", json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert json.loads(r.body) == {"got": payload, "query": {"x": "1"}}
    r = fw.get("/starlette/stream")
    assert (r.status, r.body) == (200, b"part0;part1;part2;part3;part4;"), r
    assert_clean_log(fw, mark)


# ---- FastAPI --------------------------------------------------------------------

@needs("fastapi")
def test_fastapi_pydantic_response_model_and_lifespan_resource(fw):
    mark = fw.log_mark()
    body = json.dumps({"item": "box", "quantity": 4}).encode()
    first = fw.post("/fastapi/orders", body, headers={"Content-Type": "application/json"})
    assert first.status == 200, first
    receipt = json.loads(first.body)
    # The response model filtered `secret` out and kept the types.
    assert set(receipt) == {"item", "quantity", "total", "clerk"}, receipt
    assert (receipt["item"], receipt["quantity"], receipt["total"]) == ("box", 4, 10.0)
    # The counter made at lifespan startup lives across requests of a process.
    pid, served = receipt["clerk"].split("-")[1], int(receipt["clerk"].split("-")[3])
    again = [json.loads(fw.post("/fastapi/orders", body,
                                headers={"Content-Type": "application/json"}).body)["clerk"]
             for _ in range(6)]
    mine = [int(c.split("-")[3]) for c in again if c.split("-")[1] == pid]
    assert all(n > served for n in mine), (receipt, again)
    assert_clean_log(fw, mark)


@needs("fastapi")
def test_fastapi_validation_params_and_sync_endpoint(fw):
    mark = fw.log_mark()
    r = fw.post("/fastapi/orders", b'{"item": "box", "quantity": "many"}',
                headers={"Content-Type": "application/json"})
    assert r.status == 422, r
    assert json.loads(r.body)["detail"][0]["loc"] == ["body", "quantity"]
    assert get_json(fw, "/fastapi/items/7?q=hi", headers={"X-Token": "t"}) == \
        {"item_id": 7, "q": "hi", "x_token": "t"}
    assert fw.get("/fastapi/items/seven").status == 422
    assert get_json(fw, "/fastapi/tags") == ["a", "b"]
    assert_clean_log(fw, mark)


# ---- Django ---------------------------------------------------------------------

@needs("django")
def test_django_async_view_through_asgi_handler(fw):
    mark = fw.log_mark()
    data = get_json(fw, "/django/hello/")
    assert data == {"path": "/django/hello/", "path_info": "/hello/", "script_name": "/django",
                    "method": "GET", "async": True}, data
    r = fw.post("/django/echo/", b"x" * 70000, headers={"Content-Type": "application/octet-stream"})
    assert (r.status, r.body) == (200, b"got:" + b"x" * 70000)
    r = fw.get("/django/stream/")
    assert (r.status, r.body) == (200, b"d0;d1;d2;"), r
    assert get_json(fw, "/django/sync/") == {"thread": True}
    assert fw.get("/django/nowhere/").status == 404
    assert_clean_log(fw, mark)


@needs("django")
def test_django_many_requests_no_crash(fw):
    # Django's handler leaves its requests in reference cycles: the cyclic
    # GC freed the bridge's Request objects through tp_clear, and its
    # __dealloc__ then crashed the child (every few dozen requests).
    mark = fw.log_mark()
    statuses = []
    for i in range(80):
        try:
            statuses.append(fw.get("/django/hello/" if i % 2 else "/django/nowhere/").status)
        except OSError as e:
            statuses.append(repr(e))
    assert statuses == [404, 200] * 40, statuses
    assert_clean_log(fw, mark)


@needs("django")
def test_django_refusing_lifespan_is_served_under_auto(fw):
    # Django raises on the lifespan scope; auto serves it without lifespan,
    # with an info line only, and no 503.
    fw.get("/django/hello/")
    text = fw.error_log()
    assert "PYH0205" not in text, text
    lines = [l for l in text.splitlines() if "PYH0206" in l and "asgi.py" in l]
    assert lines and all("[pyhost:info]" in l for l in lines), text


# ---- Quart ----------------------------------------------------------------------

@needs("quart")
def test_quart_routes_lifespan_body_stream(fw):
    mark = fw.log_mark()
    r = fw.get("/quart/")
    assert (r.status, r.body) == (200, b"hello from quart root_path=/quart path=/"), r
    assert get_json(fw, "/quart/started") == {"started": True}
    payload = {"k": [1, {"v": None}]}
    r = fw.post("/quart/echo?a=b", json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert json.loads(r.body) == {"got": payload, "args": {"a": "b"}}
    r = fw.get("/quart/stream")
    assert (r.status, r.body) == (200, b"q0;q1;q2;"), r
    assert_clean_log(fw, mark)
