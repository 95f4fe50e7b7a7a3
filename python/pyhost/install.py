"""`pyhost install-module`: copy mod_pyhost into Apache's modules directory
and, where the layout has a place for them, write the files that load it
(Debian's mods-available/pyhost.load + pyhost.conf for `a2enmod pyhost`,
Fedora's conf.modules.d/10-pyhost.conf)."""

import os
import shutil
import sys

from . import apache, module_location, serverconf

INSTALLED_NAME = "mod_pyhost.so"
APACHE_ROOTS = ("/etc/apache2", "/etc/httpd")


def default_apache_root():
    for root in APACHE_ROOTS:
        if os.path.isdir(root):
            return root
    return None


def load_line(module_path):
    return "LoadModule pyhost_module %s" % serverconf.quote(module_path)


def python_home_block(python_home):
    return "<IfModule pyhost_module>\n    WSGIPythonHome %s\n</IfModule>\n" % serverconf.quote(python_home)


def _write(path, text):
    tmp = path + ".pyhost-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def install(modules_dir=None, apache_root=None, python_home=None, out=sys.stdout):
    """Install the module; returns the paths written. Raises OSError or
    apache.ApacheNotFound with a message a person can act on."""
    source = module_location()
    modules_dir = modules_dir or apache.find_modules_dir()
    python_home = python_home or sys.prefix
    if not os.path.isdir(modules_dir):
        raise OSError("modules directory %s does not exist: pass --modules-dir" % modules_dir)
    target = os.path.join(modules_dir, INSTALLED_NAME)
    tmp = target + ".pyhost-tmp"
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)  # a running Apache keeps its mapping of the old file
    written = [target]
    out.write("installed %s\n" % target)

    header = "# Written by `pyhost install-module` from %s (Python %s at %s)\n" % (
        source, "%d.%d" % sys.version_info[:2], python_home)
    if apache_root and os.path.isdir(os.path.join(apache_root, "mods-available")):
        available = os.path.join(apache_root, "mods-available")
        _write(os.path.join(available, "pyhost.load"), header + load_line(target) + "\n")
        _write(os.path.join(available, "pyhost.conf"), header + python_home_block(python_home))
        written += [os.path.join(available, n) for n in ("pyhost.load", "pyhost.conf")]
        out.write("wrote %s and pyhost.conf: enable with `a2enmod pyhost`, then restart Apache "
                  "(if mod_wsgi is enabled, `a2dismod wsgi` first: both claim WSGIScriptAlias)\n"
                  % written[1])
    elif apache_root and os.path.isdir(os.path.join(apache_root, "conf.modules.d")):
        path = os.path.join(apache_root, "conf.modules.d", "10-pyhost.conf")
        _write(path, header + load_line(target) + "\n" + python_home_block(python_home))
        written.append(path)
        out.write("wrote %s: restart Apache to load it\n" % path)
    else:
        out.write("add these lines to httpd.conf and restart Apache:\n%s\nWSGIPythonHome %s\n"
                  % (load_line(target), serverconf.quote(python_home)))
    return written
