"""What `pyhost serve` serves: a WSGI or ASGI script, a `module:callable` or
a Django project, turned into the one script Apache loads (generated in the
server root when the target is not a script itself) and the directories to
put on sys.path."""

import importlib.machinery
import os
import re
from dataclasses import dataclass, field
from typing import List, Optional

MODULE_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)?$")
DJANGO_SETTINGS_RE = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")


class TargetError(ValueError):
    """TARGET cannot be served; the message says why and what to do."""


@dataclass
class Target:
    kind: str  # "script", "module" or "django"
    description: str  # for messages: what is being served
    script: Optional[str] = None  # kind == "script": the user's script
    module: Optional[str] = None  # kind in ("module", "django"): module to import
    callable: str = "application"
    settings: Optional[str] = None  # kind == "django"
    python_path: List[str] = field(default_factory=list)
    source_files: List[str] = field(default_factory=list)  # for readability checks
    # "wsgi" or "asgi" when given (--interface), None: the preflight tells.
    interface: Optional[str] = None
    # The callable was named (module:NAME, --callable-object); if not, an
    # ASGI app may be called `app`, as ASGIScriptAlias allows.
    callable_given: bool = False

    def needs_wrapper(self, reload):
        return reload or self.kind != "script"


def resolve(text, django=None, django_settings=None, python_path=(), cwd=None,
            callable_object=None, interface=None):
    """A Target for `pyhost serve TARGET` (or --django PATH); interface:
    "wsgi" or "asgi" to force one, None to let the preflight tell."""
    target = _resolve(text, django, django_settings, python_path, cwd, callable_object, interface)
    target.interface = interface
    target.callable_given = bool(callable_object) or (
        target.kind == "module" and ":" in (text or ""))
    return target


def _resolve(text, django, django_settings, python_path, cwd, callable_object, interface):
    cwd = cwd or os.getcwd()
    if callable_object is not None and not re.match(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", callable_object):
        raise TargetError("--callable-object %r is not a Python name" % callable_object)
    extra = [os.path.abspath(p) for p in python_path]
    if django:
        if callable_object:
            raise TargetError("--callable-object does not apply to --django (Django's WSGI "
                              "application is served)")
        return _django(os.path.abspath(django), django_settings, extra, interface)
    if text is None:
        raise TargetError("no TARGET: give a WSGI script, a module:callable or --django PATH")
    if os.path.isdir(text):
        # A Django project's directory (manage.py, or a settings package).
        if callable_object:
            raise TargetError("--callable-object does not apply to a Django project")
        try:
            return _django(os.path.abspath(text), django_settings, extra, interface)
        except TargetError as e:
            raise TargetError("%s is a directory but not a Django project (%s); TARGET is a WSGI "
                              "script, a module:callable or a Django project's directory"
                              % (text, e)) from None
    if os.path.isfile(text):
        script = os.path.abspath(text)
        # As `python app.py` would: the script's directory is importable.
        return Target("script", script, script=script, callable=callable_object or "application",
                      python_path=_dedup([os.path.dirname(script)] + extra), source_files=[script])
    if text.endswith((".py", ".wsgi")) or os.sep in text:
        raise TargetError("%s is not a file: TARGET is a WSGI script, a module:callable "
                          "or --django PATH" % text)
    if not MODULE_RE.match(text):
        raise TargetError("%r is neither a file nor a module:callable (like myapp.wsgi:application)" % text)
    module, _, attr = text.partition(":")
    if attr and callable_object and attr != callable_object:
        raise TargetError("%s names the callable %s and --callable-object names %s: give it once"
                          % (text, attr, callable_object))
    path = _dedup([os.path.abspath(cwd)] + extra)
    origin = _find_module(module, path)
    if origin is None:
        raise TargetError("module %s is not found in %s: run pyhost from the project's "
                          "directory or add its directory with --python-path"
                          % (module.split(".")[0], ":".join(path)))
    return Target("module", text, module=module, callable=attr or callable_object or "application",
                  python_path=path, source_files=[origin])


def _dedup(paths):
    return list(dict.fromkeys(paths))


def _find_module(module, path):
    """The file of module's top-level package or module under path, found
    without importing anything (the CLI runs as root; the app's code is for
    Apache's children to run)."""
    top = module.split(".")[0]
    spec = importlib.machinery.PathFinder.find_spec(top, path)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return spec.origin


def _django(path, settings, extra, interface=None):
    if not os.path.isdir(path):
        raise TargetError("--django %s is not a directory: give the project's directory "
                          "(the one with manage.py)" % path)
    root = path
    if settings is None:
        settings, root = _find_django_settings(path)
    package = settings.rsplit(".", 1)[0] if "." in settings else None
    # Django serves WSGI unless told otherwise: --interface asgi takes the
    # project's asgi.py (or Django's own ASGI handler).
    entry = "asgi" if interface == "asgi" else "wsgi"
    module = None
    if package and os.path.isfile(os.path.join(root, *package.split("."), entry + ".py")):
        module = package + "." + entry
    python_path = _dedup([root] + extra)
    if _find_module(settings, python_path) is None:
        raise TargetError("Django settings %s are not importable from %s: pass "
                          "--django-settings or add the directory with --python-path"
                          % (settings, root))
    return Target("django", "Django project %s (settings %s)" % (root, settings),
                  module=module, callable="application", settings=settings,
                  python_path=python_path, source_files=[root])


def _find_django_settings(path):
    """(settings module, project root) for a Django project directory: from
    manage.py's DJANGO_SETTINGS_MODULE, else the one package with settings.py
    in it (or path itself being that package)."""
    manage = os.path.join(path, "manage.py")
    if os.path.isfile(manage):
        with open(manage, encoding="utf-8", errors="replace") as f:
            m = DJANGO_SETTINGS_RE.search(f.read())
        if m:
            return m.group(1), path
    found = sorted(
        name for name in os.listdir(path)
        if os.path.isfile(os.path.join(path, name, "settings.py"))
        and os.path.isfile(os.path.join(path, name, "__init__.py"))
    )
    if len(found) == 1:
        return found[0] + ".settings", path
    if os.path.isfile(os.path.join(path, "settings.py")) and os.path.isfile(os.path.join(path, "__init__.py")):
        return os.path.basename(path) + ".settings", os.path.dirname(path)
    if found:
        raise TargetError("--django %s holds several settings packages (%s): choose one with "
                          "--django-settings" % (path, ", ".join(found)))
    raise TargetError("no Django settings found in %s (no manage.py naming "
                      "DJANGO_SETTINGS_MODULE, no package with settings.py): pass "
                      "--django-settings mysite.settings" % path)


WRAPPER = '''\
# Generated by pyhost serve: the {interface} script Apache loads for
# {description}
import sys
{prologue}
def _load():
{load}

try:
    application = _load()
except BaseException:
{on_error}
    raise
'''

LOAD_SCRIPT = '''\
    import importlib.util
    from importlib.machinery import SourceFileLoader

    # Any file name (app.py, site.wsgi): the loader is named explicitly.
    loader = SourceFileLoader("_pyhost_app", {script!r})
    spec = importlib.util.spec_from_loader("_pyhost_app", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_pyhost_app"] = module
    loader.exec_module(module)
    return getattr(module, {callable!r})
'''

LOAD_MODULE = '''\
    import importlib

    target = importlib.import_module({module!r})
    for name in {attrs!r}:
        target = getattr(target, name)
    return target
'''

LOAD_MODULE_ASGI = '''\
    import importlib

    target = importlib.import_module({module!r})
    return target.application if hasattr(target, "application") else target.app
'''

LOAD_DJANGO = '''\
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", {settings!r})
    from django.core.{interface} import get_{interface}_application

    return get_{interface}_application()
'''

RELOAD_PROLOGUE = '''\
from pyhost import reloader as _reloader

_reloader.start({state_dir!r}, {watch!r})
'''

RELOAD_ON_ERROR = '''\
    # Watch what failed to import too, so fixing it restarts the app.
    _reloader.watch_traceback(sys.exc_info())
'''


def wrapper_source(target, reload_state_dir=None, interface="wsgi"):
    """The text of the generated script for target; either interface's
    callable is `application`, which ASGIScriptAlias looks for first too."""
    if target.kind == "script":
        load = LOAD_SCRIPT.format(script=target.script, callable=target.callable)
    elif target.module:
        load = LOAD_MODULE.format(module=target.module, attrs=target.callable.split("."))
        if interface == "asgi" and not target.callable_given and target.callable == "application":
            # Unchecked (--lazy): `application`, else `app`, as ASGIScriptAlias.
            load = LOAD_MODULE_ASGI.format(module=target.module)
        if target.settings:
            load = "    import os\n\n    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", %r)\n%s" % (
                target.settings, load)
    else:
        load = LOAD_DJANGO.format(settings=target.settings, interface=interface)
    prologue = on_error = ""
    if reload_state_dir:
        prologue = RELOAD_PROLOGUE.format(state_dir=reload_state_dir,
                                          watch=[target.script] if target.script else [])
        on_error = RELOAD_ON_ERROR
    return WRAPPER.format(interface=interface.upper(), description=target.description, prologue=prologue,
                          load=load.rstrip("\n"), on_error=on_error or "    pass")
