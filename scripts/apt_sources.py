#!/usr/bin/python3
"""The Debian mirror this machine's apt is configured with: the URI of the
first enabled "deb" source whose components include main, read from
sources.list, sources.list.d/*.list (one-line) and sources.list.d/*.sources
(deb822).

    apt_sources.py                 a source for a Debian release suite (not
                                   -security, whose URI is another archive,
                                   nor a third-party repository)
    apt_sources.py --suite SUITE   a source that lists SUITE
    --root DIR                     read DIR/etc/apt instead of /etc/apt

Prints the URI, or nothing when there is none (exit status 0 either way).
Used by scripts/debian-lib.sh (debian_mirror) and tests/test_docker.py.
Standard library only: it runs under the system python3.
"""

import argparse
import glob
import os
import re

DEBIAN_SUITES = ("bookworm", "trixie", "forky", "duke", "sid", "unstable",
                 "testing", "stable")


def sources(root="/"):
    """Enabled entries as (types, uris, suites, components) lists, one-line
    files first, each kind in file-name order."""
    etc = os.path.join(root, "etc", "apt")
    entries = []
    one_line = sorted(glob.glob(os.path.join(etc, "sources.list"))
                      + glob.glob(os.path.join(etc, "sources.list.d", "*.list")))
    for path in one_line:
        with open(path) as f:
            for line in f:
                line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 4:
                    entries.append(([line[0]], [line[1]], [line[2]], line[3:]))
    for path in sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.sources"))):
        with open(path) as f:
            for stanza in re.split(r"\n\s*\n", f.read()):
                fields = {}
                for line in stanza.splitlines():
                    m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
                    if m and not line.startswith("#"):
                        fields[m.group(1).lower()] = m.group(2).split()
                if fields.get("enabled", ["yes"])[0] == "no":
                    continue
                entries.append((fields.get("types", []), fields.get("uris", []),
                                fields.get("suites", []),
                                fields.get("components", [])))
    return entries


def _debian_suite(suite):
    return not suite.endswith("-security") and suite.split("-")[0] in DEBIAN_SUITES


def mirror(entries, suite=None):
    """The first deb/main entry's URI for suite (None: any Debian release
    suite), or None."""
    for types, uris, suites, components in entries:
        if "deb" not in types or "main" not in components or not uris:
            continue
        if suite in suites if suite else any(_debian_suite(s) for s in suites):
            return uris[0]
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite")
    ap.add_argument("--root", default="/")
    args = ap.parse_args(argv)
    uri = mirror(sources(args.root), args.suite)
    if uri:
        print(uri)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
