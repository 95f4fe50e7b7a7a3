"""`pyhost serve` for ASGI apps (issue 13 point 9): the interface is
detected by the preflight (a coroutine function, or an object whose __call__
is one) or forced with --interface, the app is mounted with ASGIScriptAlias,
--reload works through the generated wrapper, and `pyhost check` says
whether uvloop is there."""

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import textwrap

import pytest

import harness
from test_cli_serve import PYHOST, _serve_fails, serve  # noqa: F401 (serve: a fixture)


@pytest.fixture
def asgi_copy(workspace, token):
    """A private, world-readable copy of apps/serve_asgi (tests edit it)."""
    path = os.path.join(workspace.root, "serve-asgi-" + token)
    shutil.copytree(os.path.join(workspace.apps, "serve_asgi"), path)
    harness._chmod_world_readable(path)
    return path


def test_serve_asgi_script_detected_on_every_mpm(serve, asgi_copy, mpm):
    # main.py defines `app` and no `application`: ASGIScriptAlias's
    # fallback, and what the preflight accepts for an ASGI app.
    s = serve(os.path.join(asgi_copy, "main.py"), "--port", harness.free_port(), "--mpm", mpm)
    s.wait_url()
    assert "(ASGI, callable app)" in "".join(s.out), s.output()
    r = s.get("/x/y")
    assert r.status == 200, s.output()
    data = r.json()
    assert data["type"] == "http" and data["asgi"] == "3.0", data
    assert data["path"] == "/x/y" and data["root_path"] == "", data
    assert data["message"] == "version-1"
    # Lifespan ran in the child before it served.
    assert data["state"] == {"made_at": "startup"}, data
    assert s.stop() == 0, s.output()


def test_serve_asgi_object_with_async_call_and_mount_point(serve, asgi_copy):
    s = serve("main:instance", "--port", harness.free_port(), "--mount-point", "/api",
              cwd=asgi_copy)
    s.wait_url()
    assert "(ASGI, callable instance)" in "".join(s.out), s.output()
    r = s.get("/api/")
    assert (r.status, r.body) == (200, b"instance"), s.output()


def test_serve_asgi_module_reloads_edited_module(serve, asgi_copy):
    s = serve("main:app", "--port", harness.free_port(), "--reload", cwd=asgi_copy)
    s.wait_url()
    assert "(ASGI, callable app)" in "".join(s.out), s.output()
    assert s.get("/").json()["message"] == "version-1"
    with open(os.path.join(asgi_copy, "asgihelper.py"), "w") as f:
        f.write('MESSAGE = "version-2"\n')

    def seen():
        try:
            r = s.get("/")
        except OSError:
            return None
        return r.status == 200 and r.json()["message"] == "version-2"

    assert harness.wait_for(seen, timeout=20, interval=0.2), \
        "edit of asgihelper.py not picked up:\n" + s.output()
    # The restarted child ran lifespan again.
    assert s.get("/").json()["state"] == {"made_at": "startup"}
    assert s.stop() == 0


def test_serve_module_without_callable_name_takes_asgi_app(serve, asgi_copy):
    # `pyhost serve main` as `uvicorn main:app` would need the name.
    s = serve("main", "--port", harness.free_port(), cwd=asgi_copy)
    s.wait_url()
    assert "(ASGI, callable app)" in "".join(s.out), s.output()
    assert s.get("/").json()["type"] == "http"


def test_serve_wsgi_stays_wsgi(serve, asgi_copy):
    s = serve("main:wsgi_app", "--port", harness.free_port(), cwd=asgi_copy)
    s.wait_url()
    assert "(WSGI, callable wsgi_app)" in "".join(s.out), s.output()
    assert s.get("/").body == b"wsgi"


def test_serve_interface_forced(serve, asgi_copy):
    # --lazy loads nothing, so only --interface asgi makes it ASGI.
    s = serve("main:app", "--port", harness.free_port(), "--lazy", "--interface", "asgi",
              cwd=asgi_copy)
    s.wait_url()
    assert "(ASGI, callable app)" in "".join(s.out), s.output()
    assert s.get("/").json()["type"] == "http"
    # Forced WSGI: the coroutine function is called as a WSGI app and fails.
    s = serve("main:app", "--port", harness.free_port(), "--interface", "wsgi", cwd=asgi_copy)
    s.wait_url()
    assert "(WSGI, callable app)" in "".join(s.out), s.output()
    assert s.get("/").status == 500


def test_serve_lazy_asgi_module_falls_back_to_app(serve, asgi_copy):
    s = serve("main", "--port", harness.free_port(), "--lazy", "--interface", "asgi",
              "--reload", cwd=asgi_copy)
    s.wait_url()
    assert s.get("/").json()["type"] == "http", s.output()


def test_serve_asgi_refuses_daemon_mode_and_bad_interface(asgi_copy):
    code, out = _serve_fails([os.path.join(asgi_copy, "main.py"), "--daemon",
                              "--port", harness.free_port()])
    assert code == 2 and "is an ASGI app" in out and "--daemon" in out, out
    assert "serving on" not in out
    code, out = _serve_fails([os.path.join(asgi_copy, "main.py"), "--interface", "rsgi",
                              "--port", harness.free_port()])
    assert code == 2 and "expected auto, asgi or wsgi" in out, out


def test_check_reports_uvloop_and_the_interface(asgi_copy):
    p = subprocess.run([PYHOST, "check", "main:instance"], cwd=asgi_copy, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = {l.split()[0]: l for l in p.stdout.splitlines()}
    assert "`instance` is callable (ASGI)" in lines["app"], p.stdout
    if importlib.util.find_spec("uvloop"):
        assert "uvloop" in lines["asgi"] and "is installed" in lines["asgi"], p.stdout
    else:
        assert "uvloop is not installed" in lines["asgi"], p.stdout


FASTAPI_MAIN = textwrap.dedent('''\
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from pydantic import BaseModel

    import fhelper


    class Item(BaseModel):
        name: str
        made: str


    @asynccontextmanager
    async def lifespan(app):
        yield {"made": "at-startup"}


    app = FastAPI(lifespan=lifespan)


    @app.get("/items/{name}", response_model=Item)
    async def item(name: str, request: __import__("fastapi").Request):
        return Item(name=name + fhelper.SUFFIX, made=request.state.made)
''')


@pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="fastapi not installed")
def test_serve_fastapi_project_with_reload(serve, workspace, token):
    project = os.path.join(workspace.root, "fastapi-" + token)
    os.makedirs(project)
    with open(os.path.join(project, "main.py"), "w") as f:
        f.write(FASTAPI_MAIN)
    with open(os.path.join(project, "fhelper.py"), "w") as f:
        f.write('SUFFIX = "-1"\n')
    harness._chmod_world_readable(project)
    s = serve("main:app", "--port", harness.free_port(), "--reload", cwd=project)
    s.wait_url()
    assert "(ASGI, callable app)" in "".join(s.out), s.output()
    r = s.get("/items/box")
    assert r.status == 200, s.output()
    assert r.json() == {"name": "box-1", "made": "at-startup"}
    with open(os.path.join(project, "fhelper.py"), "w") as f:
        f.write('SUFFIX = "-2"\n')

    def seen():
        try:
            r = s.get("/items/box")
        except OSError:
            return None
        return r.status == 200 and r.json()["name"] == "box-2"

    assert harness.wait_for(seen, timeout=20, interval=0.2), s.output()
    assert s.stop() == 0


def readme_block(first_line):
    """The README's fenced code block whose first line is first_line."""
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "README.md")) as f:
        text = f.read()
    start = text.index("\n" + first_line + "\n") + 1
    return text[start:text.index("\n```", start) + 1]


@pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="fastapi not installed")
def test_new_user_fastapi_project_from_the_readme(serve, workspace, token):
    # Issue 13's "done when": README's FastAPI project (a lifespan-made
    # resource in app.state, a JSON route using it, a WebSocket echo),
    # written into an empty directory and served as README says.
    project = os.path.join(workspace.root, "newuser-" + token)
    os.makedirs(project)
    with open(os.path.join(project, "main.py"), "w") as f:
        f.write(readme_block("# main.py"))
    harness._chmod_world_readable(project)
    s = serve("main:app", "--port", harness.free_port(), cwd=project)
    s.wait_url()
    assert "(ASGI, callable app)" in "".join(s.out), s.output()
    # the resource lifespan made is there on the first request, and is one
    for n in (1, 2, 3):
        r = s.get("/hits")
        assert (r.status, r.json()) == (200, {"hits": n}), s.output()
    websockets = pytest.importorskip("websockets")
    from websockets.asyncio.client import connect

    async def talk():
        async with connect("ws://127.0.0.1:%d/echo" % s.port) as ws:
            replies = []
            for text in ("hello", "h\u00e9llo " * 1000):
                await ws.send(text)
                replies.append(await ws.recv())
            return replies

    assert asyncio.run(asyncio.wait_for(talk(), 30)) == ["hello", "h\u00e9llo " * 1000]
    assert s.get("/hits").json() == {"hits": 4}
    assert s.stop() == 0, s.output()
    out = s.output()
    # nothing logged by pyhost (lifespan taken, no error), no traceback
    assert "Traceback" not in out and not re.search(r"PYH\d{4}", out), out
    assert '"GET /echo HTTP/1.1" 101' in out, out
