"""`pyhost check`, `module-location`, `module-config` and `install-module`
(against a fake Apache layout; the real /etc/apache2 is never touched)."""

import os
import shutil
import subprocess
import sys

import pytest

import harness

PYHOST = os.path.join(os.path.dirname(sys.executable), "pyhost")


def pyhost(*args, env=None, **kw):
    return subprocess.run([PYHOST, *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=env, **kw)


def test_module_location_and_config():
    import pyhost as pkg
    p = pyhost("module-location")
    assert p.returncode == 0 and p.stdout.strip() == pkg.module_location()
    p = pyhost("module-config")
    assert p.stdout.splitlines() == [
        'LoadModule pyhost_module "%s"' % pkg.module_location(),
        'WSGIPythonHome "%s"' % sys.prefix,
    ]


def test_check_passes_on_this_machine(workspace):
    p = pyhost("check", os.path.join(workspace.apps, "env.wsgi"))
    assert p.returncode == 0, p.stdout + p.stderr
    topics = [line.split()[0] for line in p.stdout.splitlines()]
    assert topics == ["apache", "mpm", "module", "python", "asgi", "mod_wsgi", "readable", "app"], p.stdout
    assert all(line.split()[1] == "ok" for line in p.stdout.splitlines()), p.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check as www-data")
def test_check_reports_unreadable_app_directory(workspace, token):
    app_dir = os.path.join(workspace.root, "private-" + token)
    os.makedirs(app_dir)
    shutil.copy(os.path.join(workspace.apps, "env.wsgi"), app_dir)
    os.chmod(app_dir, 0o700)
    p = pyhost("check", os.path.join(app_dir, "env.wsgi"))
    assert p.returncode == 1, p.stdout
    failing = [l for l in p.stdout.splitlines() if l.split()[1] == "FAIL"]
    assert len(failing) == 1, p.stdout
    line = failing[0]
    assert line.startswith("readable") and app_dir in line and "drwx------" in line
    assert "chmod a+rX" in line  # says what to do


def test_check_reports_a_missing_script(workspace):
    p = pyhost("check", os.path.join(workspace.root, "no-such-app.wsgi"))
    assert p.returncode == 1
    assert "no-such-app.wsgi is not a file" in p.stderr, p.stdout + p.stderr


def test_check_loads_a_module_callable_as_the_children(workspace):
    # module:callable from the current directory, imported as www-data.
    cwd = os.path.join(workspace.apps, "serve_bad")
    p = subprocess.run([PYHOST, "check", "other_name:app"], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    app = [l for l in p.stdout.splitlines() if l.startswith("app")]
    assert app and " ok " in app[0] and "`app` is callable" in app[0], p.stdout
    p = subprocess.run([PYHOST, "check", "import_error:application"], cwd=cwd,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout
    assert "ModuleNotFoundError: No module named 'no_such_module_for_pyhost_tests'" in p.stderr
    assert any(l.startswith("app") and "FAIL" in l for l in p.stdout.splitlines()), p.stdout


def fake_debian_layout(root):
    for sub in ("mods-available", "mods-enabled", "modules"):
        os.makedirs(os.path.join(root, sub))
    return os.path.join(root, "modules")


def test_install_module_debian_layout_and_a2enmod(workspace, token):
    root = os.path.join(workspace.root, "apache-root-" + token)
    modules = fake_debian_layout(root)
    p = pyhost("install-module", "--apache-root", root, "--modules-dir", modules)
    assert p.returncode == 0, p.stderr
    installed = os.path.join(modules, "mod_pyhost.so")
    import pyhost as pkg
    with open(installed, "rb") as a, open(pkg.module_location(), "rb") as b:
        assert a.read() == b.read()
    with open(os.path.join(root, "mods-available", "pyhost.load")) as f:
        assert 'LoadModule pyhost_module "%s"' % installed in f.read()
    with open(os.path.join(root, "mods-available", "pyhost.conf")) as f:
        assert 'WSGIPythonHome "%s"' % sys.prefix in f.read()
    assert "a2enmod pyhost" in p.stdout

    if shutil.which("a2enmod"):
        env = dict(os.environ, APACHE_CONFDIR=root)
        e = subprocess.run(["a2enmod", "-q", "pyhost"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert e.returncode == 0, e.stdout + e.stderr
        for name in ("pyhost.load", "pyhost.conf"):
            assert os.path.islink(os.path.join(root, "mods-enabled", name))

    # What a2enmod enabled loads and configures a server: Apache's config test.
    srv = harness.Apache(workspace, "installed-" + token, python_directives=False,
                         extra="IncludeOptional %s/mods-enabled/*.load\n"
                               "IncludeOptional %s/mods-enabled/*.conf\n"
                               "WSGIScriptAlias / @APPS@/env.wsgi\n" % (root, root))
    srv.render = _without_module_under_test(srv.render)
    rc, out = srv.config_test()
    assert rc == 0, out


def _without_module_under_test(render):
    # The harness always loads the module under test; here the installed copy
    # must be what loads it.
    def wrapped(ports):
        return "\n".join(l for l in render(ports).splitlines()
                         if not l.startswith("LoadModule pyhost_module "))
    return wrapped


def test_install_module_other_layouts(workspace, token):
    root = os.path.join(workspace.root, "rhel-root-" + token)
    os.makedirs(os.path.join(root, "conf.modules.d"))
    modules = os.path.join(root, "modules")
    os.makedirs(modules)
    p = pyhost("install-module", "--apache-root", root, "--modules-dir", modules)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(root, "conf.modules.d", "10-pyhost.conf")) as f:
        text = f.read()
    assert "LoadModule pyhost_module" in text and "WSGIPythonHome" in text

    bare = os.path.join(workspace.root, "bare-" + token)
    os.makedirs(bare)
    p = pyhost("install-module", "--apache-root", bare, "--modules-dir", bare)
    assert p.returncode == 0 and "add these lines to httpd.conf" in p.stdout


def test_install_module_missing_modules_dir_is_one_line(workspace, token):
    p = pyhost("install-module", "--apache-root", workspace.root,
               "--modules-dir", os.path.join(workspace.root, "nope-" + token))
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1 and "--modules-dir" in p.stderr, p.stderr
