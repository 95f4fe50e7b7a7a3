"""Can Apache's children read what they need? Answered from mode bits and the
children's uid/gid/groups, walking every path component, because the answer
as root (who reads everything) says nothing about www-data."""

import grp
import os
import pwd
import stat
import sys
import sysconfig
from dataclasses import dataclass
from typing import FrozenSet, List, Optional

R, W, X = 4, 2, 1


@dataclass(frozen=True)
class Identity:
    user: str
    uid: int
    gids: FrozenSet[int]


@dataclass(frozen=True)
class Unreadable:
    path: str  # what was asked for
    what: str  # its role, e.g. "sys.prefix, the venv"
    blocker: str  # the component that stops the user
    reason: str  # e.g. "drwx------ root:root"
    fix: str

    def message(self, identity):
        return "user %s (Apache's children) cannot read %s (%s): %s is %s; %s" % (
            identity.user, self.path, self.what, self.blocker, self.reason,
            self.fix.format(blocker=self.blocker),
        )


def identity(user, group=None):
    """The uid and groups Apache's children get from `User user` / `Group group`
    (httpd calls setgid(group) and initgroups(user, group))."""
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    gids = {gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    return Identity(user=user, uid=pw.pw_uid, gids=frozenset(gids))


def current_identity():
    uid = os.geteuid()
    name = pwd.getpwuid(uid).pw_name
    return Identity(user=name, uid=uid, gids=frozenset({os.getegid(), *os.getgroups()}))


def _allows(st, who, bits):
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        return (st.st_mode >> 6) & bits == bits
    if st.st_gid in who.gids:
        return (st.st_mode >> 3) & bits == bits
    return st.st_mode & bits == bits


def _describe(st):
    def name(lookup, ident):
        try:
            return lookup(ident)[0]
        except KeyError:
            return str(ident)

    return "%s %s:%s" % (
        stat.filemode(st.st_mode),
        name(pwd.getpwuid, st.st_uid),
        name(grp.getgrgid, st.st_gid),
    )


def blocking_component(path, who, list_dir=True):
    """(component, reason) that keeps `who` from reading `path` (a file it must
    read, or a directory it must list, or with list_dir=False only pass
    through), or None if nothing does."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        component = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(component)
        except OSError as e:
            return component, "missing (%s)" % e.strerror
        last = i == len(parts)
        if not last:
            need = X
        elif stat.S_ISDIR(st.st_mode):
            need = R | X if list_dir else X
        else:
            need = R
        if not _allows(st, who, need):
            return component, _describe(st)
    return None


def blocking_write(path, who):
    """(component, reason) that keeps `who` from writing `path` (an existing
    file, or a directory to create files in), or None if nothing does."""
    blocked = blocking_component(os.path.dirname(os.path.realpath(path)) or os.sep, who,
                                 list_dir=False)
    if blocked:
        return blocked
    try:
        st = os.stat(path)
    except OSError as e:
        return path, "missing (%s)" % e.strerror
    if not _allows(st, who, W | X if stat.S_ISDIR(st.st_mode) else W):
        return path, _describe(st)
    return None


PYTHON_FIX = (
    "use a Python and venv outside {blocker}, e.g. `/usr/bin/python3 -m venv /opt/venv`, "
    "install mod-pyhost there and run that venv's pyhost"
)


def python_paths():
    """What the embedded interpreter reads after it starts in a child."""
    paths = [
        (sys.base_prefix, "sys.base_prefix, the Python itself"),
        (sysconfig.get_paths()["stdlib"], "the standard library"),
    ]
    if sys.prefix != sys.base_prefix:
        paths.insert(0, (sys.prefix, "sys.prefix, the venv"))
    paths.append((sysconfig.get_paths()["purelib"], "site-packages"))
    return paths


def check_readable(who, script=None):
    """Every path Apache's children will need that `who` cannot read."""
    wanted = []
    if script:
        script = os.path.abspath(script)
        fix = "move the app where that user can read it (e.g. under /srv) or let it read there (chmod a+rX)"
        wanted.append((os.path.dirname(script), "the WSGI script's directory", fix))
        wanted.append((script, "the WSGI script", fix))
    wanted += [(p, what, PYTHON_FIX) for p, what in python_paths()]

    problems: List[Unreadable] = []
    seen = set()
    for path, what, fix in wanted:
        blocked = blocking_component(path, who)
        if blocked and (blocked[0], fix) not in seen:
            seen.add((blocked[0], fix))
            problems.append(Unreadable(path, what, blocked[0], blocked[1], fix))
    return problems


def default_child_user() -> Optional[str]:
    """Who Apache's children run as when we start it as root: Debian's
    www-data, Fedora's apache, else daemon. None when not root (httpd then
    ignores User/Group and children keep our uid)."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "apache", "daemon"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None
