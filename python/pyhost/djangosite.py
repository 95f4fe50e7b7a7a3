"""What `pyhost serve` does for a Django project beyond serving its WSGI
application: Apache serves STATIC_URL from STATIC_ROOT (and MEDIA_URL from
MEDIA_ROOT), `--collectstatic` fills STATIC_ROOT first, and a SQLite database
or media directory that Apache's children cannot write is named before the
first login fails with "attempt to write a readonly database"."""

import os
import subprocess
import sys

from . import access


class DjangoError(RuntimeError):
    """The project cannot be served as asked; the message says why."""


def _warn(message):
    print("pyhost: warning: " + message, flush=True)


def _local_url(url):
    """'/static' for STATIC_URL '/static/' or 'static/'; None for a URL on
    another host (a CDN), which Apache has nothing to serve for."""
    if not url or "://" in url or url.startswith("//"):
        return None
    url = "/" + url.strip("/")
    return url if url != "/" else None


def collectstatic(target):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=target.settings,
               PYTHONPATH=os.pathsep.join(target.python_path + [os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "django", "collectstatic", "--noinput"],
                          env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise DjangoError("collectstatic failed (exit %d); its output is above" % proc.returncode)


def _writable_warning(path, who, what, consequence):
    blocked = access.blocking_write(path, who)
    if blocked:
        _warn("user %s (Apache's children) cannot write %s %s (%s is %s): %s; give that user "
              "write access (chown/chmod the file and its directory) or serve with --user"
              % (who.user, what, path, blocked[0], blocked[1], consequence))


def prepare(target, facts, who, want_collectstatic, taken=()):
    """(URL, directory) aliases for Apache to serve, after running
    collectstatic if asked; warns about what will not work. facts: the
    settings the preflight read ({} with --lazy: nothing is known)."""
    if not facts:
        if want_collectstatic:
            raise DjangoError("--collectstatic needs the project's settings, which --lazy does not read")
        return []
    aliases = []
    static_url, static_root = _local_url(facts.get("static_url")), facts.get("static_root")
    if want_collectstatic:
        if not static_root:
            raise DjangoError("--collectstatic needs STATIC_ROOT in %s (where to collect to)"
                              % target.settings)
        collectstatic(target)
    if static_url and static_url not in taken:
        if static_root and os.path.isdir(static_root):
            blocked = access.blocking_component(static_root, who)
            if blocked:
                _warn("user %s cannot read STATIC_ROOT %s (%s is %s): static files will be 403"
                      % (who.user, static_root, blocked[0], blocked[1]))
            aliases.append((static_url, os.path.abspath(static_root)))
        else:
            _warn("%s/ is not served: %s; set STATIC_ROOT and pass --collectstatic"
                  % (static_url, "STATIC_ROOT %s does not exist" % static_root if static_root
                     else "STATIC_ROOT is not set"))
    media_url, media_root = _local_url(facts.get("media_url")), facts.get("media_root")
    if media_url and media_root and media_url not in taken:
        if os.path.isdir(media_root):
            aliases.append((media_url, os.path.abspath(media_root)))
            _writable_warning(media_root, who, "MEDIA_ROOT", "uploads will fail")
        else:
            _warn("MEDIA_ROOT %s does not exist: %s/ is not served" % (media_root, media_url))
    for db in facts.get("sqlite", []):
        if os.path.exists(db):
            _writable_warning(db, who, "the SQLite database",
                              "logins and every other write will fail")
        _writable_warning(os.path.dirname(os.path.abspath(db)), who,
                          "the SQLite database's directory",
                          "SQLite cannot create its journal there, so writes will fail")
    return aliases
