"""The distribution's name: `pyhost` on PyPI is somebody else's package, so
every message that tells a user to install pyhost must name ours."""

import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def test_distribution_is_mod_pyhost_and_installed_under_that_name():
    from importlib import metadata
    assert metadata.version("mod-pyhost")
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("pyhost")
    # The command and the import name stay pyhost.
    eps = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "pyhost"]
    assert [ep.value for ep in eps] == ["pyhost.cli:main"]


def test_no_message_tells_users_to_install_the_other_pyhost():
    bad = re.compile(r"(?<!\w)(pip install|reinstall|install)( --?[\w-]+)* pyhost\b(?![.\w-])")
    found = []
    for top in ("module", "python", "scripts", "README.md", "CONTRIBUTING.md", "docker", "conf"):
        path = os.path.join(ROOT, top)
        files = [path] if os.path.isfile(path) else [
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
            if f.endswith((".c", ".h", ".py", ".sh", ".md", ".conf", "Dockerfile", ".pyx"))]
        for name in files:
            with open(name, errors="replace") as f:
                for no, line in enumerate(f, 1):
                    if bad.search(line):
                        found.append("%s:%d: %s" % (os.path.relpath(name, ROOT), no, line.strip()))
    assert not found, "\n".join(found)
