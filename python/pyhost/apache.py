"""Finding the Apache httpd to run and to build against: apxs, the httpd
binary, its modules directory, its version and its compiled-in modules."""

import os
import re
import shutil
import subprocess

MODULE_DIR_FALLBACKS = (
    "/usr/lib/apache2/modules",  # Debian, Ubuntu
    "/usr/lib64/httpd/modules",  # Fedora, RHEL
    "/usr/lib/httpd/modules",
    "/usr/local/apache2/modules",  # the httpd docker image, source builds
)
HTTPD_NAMES = ("apache2", "httpd")


class ApacheNotFound(RuntimeError):
    pass


def find_apxs():
    """Path of apxs ($APXS first), or None."""
    apxs = os.environ.get("APXS")
    if apxs:
        return apxs if os.access(apxs, os.X_OK) else None
    return shutil.which("apxs") or shutil.which("apxs2")


def apxs_query(name, apxs=None):
    apxs = apxs or find_apxs()
    if not apxs:
        return ""
    try:
        out = subprocess.run(
            [apxs, "-q", name], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip()


def find_httpd():
    """The httpd binary: apxs's SBINDIR, then PATH, then the usual places."""
    candidates = []
    sbindir = apxs_query("SBINDIR")
    if sbindir:
        candidates += [os.path.join(sbindir, n) for n in HTTPD_NAMES]
    candidates += [shutil.which(n) for n in HTTPD_NAMES]
    candidates += [os.path.join(d, n) for d in ("/usr/sbin", "/usr/local/apache2/bin") for n in HTTPD_NAMES]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise ApacheNotFound(
        "no Apache httpd binary (apache2 or httpd) found: install apache2 "
        "(Debian/Ubuntu) or httpd (Fedora/RHEL)"
    )


def find_modules_dir():
    """Where mod_*.so live (mod_mpm_event.so, mod_authz_core.so, ...)."""
    candidates = [apxs_query("LIBEXECDIR")] + list(MODULE_DIR_FALLBACKS)
    for path in candidates:
        if path and os.path.isfile(os.path.join(path, "mod_authz_core.so")):
            return path
    raise ApacheNotFound(
        "no Apache modules directory (with mod_authz_core.so) found in %s"
        % ", ".join(p for p in candidates if p)
    )


def httpd_version(httpd):
    """'Apache/2.4.71 (Debian)', or '' when httpd -v says nothing useful."""
    try:
        out = subprocess.run(
            [httpd, "-v"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"Server version:\s*(.+)", out)
    return m.group(1).strip() if m else ""


def compiled_in_modules(httpd):
    """Names like 'log_config' for modules built into the httpd binary, which
    must not be loaded again with LoadModule."""
    try:
        out = subprocess.run(
            [httpd, "-l"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(re.findall(r"^\s*mod_(\w+)\.c\s*$", out, re.M))
