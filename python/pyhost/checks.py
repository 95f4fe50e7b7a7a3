"""`pyhost check`: a few lines on whether this machine can run pyhost, each
either ok or a problem with what to do about it, in one line."""

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from . import ModuleNotBuilt, access, apache, module_location, preflight


@dataclass
class Line:
    topic: str
    ok: bool
    text: str

    def __str__(self):
        return "%-8s %-4s %s" % (self.topic, "ok" if self.ok else "FAIL", self.text)


def check_apache():
    apxs = apache.find_apxs()
    try:
        httpd = apache.find_httpd()
    except apache.ApacheNotFound as e:
        return [Line("apache", False, str(e))], None
    version = apache.httpd_version(httpd) or "version unknown"
    if not apxs:
        return [Line("apache", False, "%s (%s), but no apxs: install apache2-dev (Debian/Ubuntu) or "
                     "httpd-devel (Fedora/RHEL) to build pyhost, or set APXS" % (httpd, version))], httpd
    return [Line("apache", True, "%s (%s); apxs %s" % (httpd, version, apxs))], httpd


def configured_mpm(httpd):
    """(mpm, where it was found) or (None, why not)."""
    try:
        out = subprocess.run([httpd, "-V"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    m = re.search(r"Server MPM:[ \t]*(\w+)", out)
    if m:
        return m.group(1).lower(), "httpd -V"
    for root in ("/etc/apache2/mods-enabled", "/etc/httpd/conf.modules.d"):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in sorted(names):
            m = re.match(r"mpm_(\w+)\.load$", name)
            if m:
                return m.group(1), os.path.join(root, name)
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    m = re.search(r"^\s*LoadModule\s+mpm_(\w+)_module", f.read(), re.M)
            except OSError:
                continue
            if m:
                return m.group(1), path
    return None, "no MPM in httpd -V, mods-enabled or conf.modules.d"


def check_mpm(httpd):
    if httpd is None:
        return []
    mpm, where = configured_mpm(httpd)
    if mpm is None:
        return [Line("mpm", True, "not determined (%s); `pyhost serve --mpm` picks its own" % where)]
    note = " (one request per process: raise --processes / MaxRequestWorkers for concurrency)" \
        if mpm == "prefork" else ""
    return [Line("mpm", True, "%s, from %s%s" % (mpm, where, note))]


def linked_libpython(path):
    """(soname, resolved path or None) of the libpython the module links, or
    None if ldd is unavailable or names none."""
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        m = re.match(r"\s*(libpython\S+)\s*=>\s*(\S+)", line)
        if m:
            return m.group(1), None if m.group(2) == "not" else m.group(2)
    return None


def check_module():
    try:
        path = module_location()
    except ModuleNotBuilt as e:
        return [Line("module", False, str(e))], None
    linked = linked_libpython(path)
    if linked and linked[1] is None:
        return [Line("module", False, "%s needs %s, which the dynamic linker cannot find: install "
                     "that Python's shared library or add its directory to /etc/ld.so.conf.d and run "
                     "ldconfig" % (path, linked[0]))], path
    text = path + (" (links %s)" % linked[1] if linked else "")
    return [Line("module", True, text)], path


def check_python(module_path):
    running = "%d.%d" % sys.version_info[:2]
    try:
        from . import _buildinfo
    except ImportError:
        return [Line("python", False, "no build information next to the module: reinstall mod-pyhost "
                     "(`pip install --no-cache-dir mod-pyhost`) with this Python")]
    venv = " in venv %s" % sys.prefix if sys.prefix != sys.base_prefix else ""
    if _buildinfo.PYTHON_VERSION != running:
        return [Line("python", False, "module built for Python %s, this is Python %s%s: reinstall mod-pyhost "
                     "with this Python (`%s -m pip install --no-cache-dir --force-reinstall mod-pyhost`)"
                     % (_buildinfo.PYTHON_VERSION, running, venv, sys.executable))]
    if os.path.realpath(_buildinfo.PYTHON_HOME) != os.path.realpath(sys.base_prefix):
        return [Line("python", False, "module built against the Python at %s, this venv's Python is at %s: "
                     "reinstall mod-pyhost in this venv with --no-cache-dir so it links the right libpython"
                     % (_buildinfo.PYTHON_HOME, sys.base_prefix))]
    libver = module_path and linked_libpython(module_path)
    if libver and ("python%s" % running) not in libver[0]:
        return [Line("python", False, "module links %s but this is Python %s: reinstall mod-pyhost with "
                     "--no-cache-dir" % (libver[0], running))]
    return [Line("python", True, "Python %s at %s%s, as the module was built for"
                 % (running, sys.base_prefix, venv))]


APACHE_ROOTS = ("/etc/apache2", "/etc/httpd")
LOAD_RE = re.compile(r"^\s*LoadModule\s+(\w+)\s+\"?([^\s\"]+)", re.M)


def loaded_modules(roots=APACHE_ROOTS):
    """(symbol, path, file) of every LoadModule in the system Apache's
    enabled module files and main config."""
    found = []
    for root in roots:
        files = [os.path.join(root, n) for n in ("apache2.conf", "httpd.conf", "conf/httpd.conf")]
        for sub, ext in (("mods-enabled", ".load"), ("conf.modules.d", ".conf")):
            try:
                names = sorted(os.listdir(os.path.join(root, sub)))
            except OSError:
                continue
            files += [os.path.join(root, sub, n) for n in names if n.endswith(ext)]
        for path in files:
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                continue
            found += [(m.group(1), m.group(2), path) for m in LOAD_RE.finditer(text)]
    return found


def check_mod_wsgi(roots=APACHE_ROOTS):
    """mod_wsgi and pyhost cannot share a server (both embed Python; pyhost
    refuses to start with PYH0110)."""
    mods = loaded_modules(roots)
    pyhost = [m for m in mods if m[0] == "pyhost_module" or "mod_pyhost" in os.path.basename(m[1])]
    wsgi = [m for m in mods if m not in pyhost
            and (m[0] == "wsgi_module" or os.path.basename(m[1]).startswith("mod_wsgi"))]
    if wsgi and pyhost:
        return [Line("mod_wsgi", False, "mod_wsgi (%s) and mod_pyhost (%s) are both loaded; Apache "
                     "will refuse to start (PYH0110): remove one of the two LoadModule lines "
                     "(Debian: a2dismod wsgi)" % (wsgi[0][2], pyhost[0][2]))]
    if wsgi:
        return [Line("mod_wsgi", True, "mod_wsgi is loaded (%s): remove that LoadModule line when "
                     "you load pyhost (Debian: a2dismod wsgi); the two cannot share a server"
                     % wsgi[0][2])]
    return [Line("mod_wsgi", True, "not loaded")]


def check_readable(who, script):
    problems = access.check_readable(who, script)
    if problems:
        return [Line("readable", False, p.message(who)) for p in problems]
    what = "the app, " if script else ""
    return [Line("readable", True, "%s can read %sthe venv and the Python install" % (who.user, what))]


def check_asgi():
    """Whether ASGI apps get uvloop (ASGIEventLoop auto) or plain asyncio:
    either works, uvloop is faster."""
    if importlib.util.find_spec("uvloop") is None:
        return [Line("asgi", True, "uvloop is not installed: ASGI apps run on asyncio's event loop "
                     "(`%s -m pip install uvloop` for a faster one)" % sys.executable)]
    try:
        version = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        version = "(version unknown)"
    return [Line("asgi", True, "uvloop %s is installed: ASGI apps run on it" % version)]


def check_app(target, user, group):
    """Loads the app as Apache's children would (their user and sys.path);
    the traceback, if any, is printed by the loader."""
    facts = preflight.load_as_children(target, user, group)
    if facts is None:
        return [Line("app", False, "%s does not load as %s (see above); `pyhost serve` would "
                     "refuse to start it" % (target.description, user or "this user"))]
    interface = target.interface or facts.get("interface") or "wsgi"
    return [Line("app", True, "%s loads as %s; `%s` is callable (%s)"
                 % (target.description, user or "this user", facts.get("callable", target.callable),
                    interface.upper()))]


def run(who, target=None, user=None, group=None, out=sys.stdout):
    """Print the check's lines; True if nothing failed. target: a
    targets.Target to check too."""
    lines, httpd = check_apache()
    lines += check_mpm(httpd)
    module_lines, module_path = check_module()
    lines += module_lines
    lines += check_python(module_path)
    lines += check_asgi()
    lines += check_mod_wsgi()
    readable = []
    for path in (target.source_files if target else [None]):
        readable += [l for l in check_readable(who, path) if not l.ok or not readable]
    lines += readable
    for line in lines:
        out.write("%s\n" % line)
    if target and all(line.ok for line in readable):
        out.flush()  # the loader's traceback, if any, comes after these lines
        app = check_app(target, user, group)
        out.write("%s\n" % app[0])
        lines += app
    return all(line.ok for line in lines)
