# Sourced by build-python-ft.sh and sid-root.sh: the Debian mirror this
# machine's apt is configured with, and apt run against Debian sid with a
# private state directory (the machine's own apt lists are left alone).
#
#   debian_mirror            prints the URI of the first "deb" source for a
#                            Debian release whose components include main
#                            (one-line .list and deb822 .sources files), or
#                            nothing (scripts/apt_sources.py; its options,
#                            e.g. --root DIR, pass through)
#   sid_apt_init DIR         private apt state for sid deb + deb-src in DIR,
#                            then apt-get update (signatures checked with the
#                            archive keyring, as apt always does)
#   sid_apt DIR CMD ARGS...  run apt-get/apt-cache CMD with that state

_debian_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

debian_mirror() {
    /usr/bin/python3 "$_debian_lib_dir/apt_sources.py" "$@"
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
