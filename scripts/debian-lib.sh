# Sourced by build-python-ft.sh and sid-root.sh: the Debian mirror this
# machine's apt is configured with, and apt run against Debian sid with a
# private state directory (the machine's own apt lists are left alone).
#
#   debian_mirror            prints the URI of the first "deb" source whose
#                            components include main (one-line .list and
#                            deb822 .sources files), or nothing
#   sid_apt_init DIR         private apt state for sid deb + deb-src in DIR,
#                            then apt-get update (signatures checked with the
#                            archive keyring, as apt always does)
#   sid_apt DIR CMD ARGS...  run apt-get/apt-cache CMD with that state

debian_mirror() {
    /usr/bin/python3 - <<'EOF'
import glob, re
entries = []  # (types, uris, suites, components)
for path in sorted(glob.glob("/etc/apt/sources.list") + glob.glob("/etc/apt/sources.list.d/*.list")):
    with open(path) as f:
        for line in f:
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 4:
                entries.append(([line[0]], [line[1]], [line[2]], line[3:]))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
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
                            fields.get("suites", []), fields.get("components", [])))
# The Debian archive proper: a suite named like a Debian release, not
# -security (its URI is another archive) nor a third-party repository.
for types, uris, suites, components in entries:
    if ("deb" in types and "main" in components and uris
            and any(not s.endswith("-security") and s.split("-")[0] in
                    ("bookworm", "trixie", "forky", "duke", "sid", "unstable", "testing", "stable")
                    for s in suites)):
        print(uris[0])
        break
EOF
}

SID_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

_sid_apt_opts() {
    local dir="$1"
    printf '%s\n' -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$dir/sources.list.d" \
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::Archives=$dir/archives" \
        -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" \
        -o "APT::Sandbox::User=root"
}

sid_apt_init() {
    local dir="$1" mirror
    mirror="$(debian_mirror)"
    if [ -z "$mirror" ]; then
        echo "debian-lib: no Debian mirror in /etc/apt/sources.list*" >&2
        return 1
    fi
    mkdir -p "$dir/sources.list.d" "$dir/lists/partial" "$dir/archives/partial"
    cat > "$dir/sources.list.d/sid.sources" <<EOF
Types: deb deb-src
URIs: $mirror
Suites: sid
Components: main
Signed-By: $SID_KEYRING
EOF
    local opts
    mapfile -t opts < <(_sid_apt_opts "$dir")
    apt-get "${opts[@]}" -q update >"$dir/update.log" 2>&1 || { cat "$dir/update.log" >&2; return 1; }
}

sid_apt() {
    local dir="$1" cmd="$2" opts
    shift 2
    mapfile -t opts < <(_sid_apt_opts "$dir")
    "$cmd" "${opts[@]}" "$@"
}
