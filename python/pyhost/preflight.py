"""Loads the app `pyhost serve` is about to serve, the way Apache's children
will (their user, their sys.path), so a syntax error, an import error or a
missing callable stops `pyhost serve` before it says it serves, with a
traceback a person can read (`pyhost check TARGET` uses it too). It also
tells which interface the callable speaks (WSGI or ASGI), so the server is
configured with the right directive.
load_as_children() runs `python -m pyhost.preflight JSON FD` in a child
process with the children's identity; its exit status is 0 when the app
loaded and its callable is callable."""

import dataclasses
import grp
import importlib
import inspect
import importlib.util
import json
import os
import pwd
import subprocess
import sys
import traceback
import types
from importlib.machinery import SourceFileLoader

LOADED, FAILED = 0, 1

# The caller's side: runs this module in a child process.

PREFLIGHT_TIMEOUT = 120.0  # seconds an app may take to import


def _as_child(user, group):
    """preexec_fn: become Apache's children's user (we are root)."""
    pw, gid = pwd.getpwnam(user), grp.getgrnam(group).gr_gid

    def drop():
        os.setgroups([])
        os.initgroups(user, gid)
        os.setgid(gid)
        os.setuid(pw.pw_uid)
    return drop


def load_as_children(target, user, group, cwd=None):
    """Loads the app once as Apache's children would (their user, the same
    sys.path, this working directory); prints why it cannot load. Returns
    None if it cannot load, else what it learnt (a dict: Django's settings)."""
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "pyhost.preflight", json.dumps(dataclasses.asdict(target)), str(w)]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, cwd=cwd, pass_fds=(w,),
                                preexec_fn=_as_child(user, group) if user else None)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as facts:
        try:
            proc.wait(PREFLIGHT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            sys.stderr.write("pyhost: the app did not finish loading within %ds\n" % PREFLIGHT_TIMEOUT)
            return None
        data = facts.read()
    if proc.returncode != 0:
        return None
    return json.loads(data) if data else {}


# The child's side.

def _user_frames(exc):
    """The exception's traceback without the loading machinery's frames
    (this file, importlib's bootstrap): what the user wrote."""
    te = traceback.TracebackException.from_exception(exc)
    here = os.path.abspath(__file__)
    keep = [f for f in te.stack
            if os.path.abspath(f.filename) != here and not f.filename.startswith("<frozen ")]
    te.stack = traceback.StackSummary.from_list(keep)
    return "".join(te.format())


def _candidates(owner):
    """Names an app could be served by: public callables the module holds
    that are neither modules nor classes."""
    return sorted(name for name, value in vars(owner).items()
                  if not name.startswith("_") and callable(value)
                  and not isinstance(value, (types.ModuleType, type)))


def _load(spec):
    """(owner, what) where owner is the module the callable lives in."""
    if spec["kind"] == "script":
        loader = SourceFileLoader("_pyhost_app", spec["script"])
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        sys.modules[loader.name] = module
        loader.exec_module(module)
        return module, spec["script"]
    if spec.get("settings"):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", spec["settings"])
    if spec.get("module"):
        return importlib.import_module(spec["module"]), "module " + spec["module"]
    if spec.get("interface") == "asgi":
        from django.core.asgi import get_asgi_application
        return types.SimpleNamespace(application=get_asgi_application()), spec["description"]
    from django.core.wsgi import get_wsgi_application
    return types.SimpleNamespace(application=get_wsgi_application()), spec["description"]


def interface_of(obj):
    """"asgi" for an ASGI callable: a coroutine function, or an object whose
    __call__ is one (FastAPI, Starlette, Quart, Django's ASGIHandler);
    else "wsgi". A WSGI callable never is a coroutine function, and an ASGI
    one almost always is, so this is what uvicorn's and granian's
    `--interface auto` decide on too."""
    if inspect.iscoroutinefunction(obj):
        return "asgi"
    call = getattr(obj, "__call__", None)
    if call is not None and not inspect.isfunction(obj) and inspect.iscoroutinefunction(call):
        return "asgi"
    # asgiref's markcoroutinefunction before Python 3.12 marks a sync
    # function that returns a coroutine with asyncio's private marker.
    import asyncio.coroutines
    mark = getattr(asyncio.coroutines, "_is_coroutine", None)
    if mark is not None and any(getattr(f, "_is_coroutine", None) is mark for f in (obj, call)):
        return "asgi"
    return "wsgi"


def check(spec, out=sys.stderr, facts=None):
    sys.path[0:0] = [p for p in spec["python_path"] if p not in sys.path]
    try:
        owner, what = _load(spec)
        obj = owner
        if (not spec.get("callable_given") and spec["callable"] == "application"
                and not hasattr(owner, "application") and spec.get("interface") != "wsgi"
                and hasattr(owner, "app") and interface_of(getattr(owner, "app")) == "asgi"):
            # FastAPI's and Starlette's name, which ASGIScriptAlias takes
            # when there is no `application`.
            spec["callable"] = "app"
        for name in spec["callable"].split("."):
            if not hasattr(obj, name):
                names = _candidates(owner) if isinstance(owner, types.ModuleType) else []
                out.write("pyhost: %s defines no `%s`%s; pick the app with --callable-object NAME "
                          "(or TARGET module:NAME)\n"
                          % (what, spec["callable"],
                             ": it defines %s" % ", ".join(names) if names else " and no other callable"))
                return FAILED
            obj = getattr(obj, name)
        if not callable(obj):
            out.write("pyhost: `%s` in %s is a %s, not a WSGI or ASGI callable\n"
                      % (spec["callable"], what, type(obj).__name__))
            return FAILED
        interface = interface_of(obj)
    except BaseException as e:  # SystemExit and KeyboardInterrupt from an app too
        out.write("pyhost: the app failed to load:\n%s" % _user_frames(e))
        return FAILED
    if facts is not None:
        facts["interface"] = interface
        facts["callable"] = spec["callable"]
        if spec.get("settings"):
            facts.update(django_facts())
    return LOADED


def django_facts():
    """The settings `pyhost serve --django` acts on: where static and media
    files are, and the SQLite files the app writes."""
    from django.conf import settings

    def text(name):
        value = getattr(settings, name, None)
        return str(value) if value else None

    sqlite = [str(db.get("NAME")) for db in getattr(settings, "DATABASES", {}).values()
              if str(db.get("ENGINE", "")).endswith("sqlite3") and db.get("NAME")
              and str(db.get("NAME")) != ":memory:"]
    return {"static_url": text("STATIC_URL"), "static_root": text("STATIC_ROOT"),
            "media_url": text("MEDIA_URL"), "media_root": text("MEDIA_ROOT"),
            "sqlite": sqlite}


def main(argv=None):
    """argv: the target as JSON, then optionally a descriptor (a pipe the
    caller reads) to write what was learnt (Django's settings) to, as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    facts = {}
    code = check(json.loads(argv[0]), facts=facts)
    if len(argv) > 1:
        with os.fdopen(int(argv[1]), "w") as f:
            if code == LOADED:
                json.dump(facts, f)
    return code


if __name__ == "__main__":
    sys.exit(main())
