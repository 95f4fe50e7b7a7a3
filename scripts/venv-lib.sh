# Sourced by dev-env.sh and install-bench-peers.sh: make sure a venv exists
# and was made from the given system Python (same base prefix and X.Y),
# recreating it otherwise. Both venvs must come from one interpreter so
# pyhost and its peers run the same Python.
#   ensure_venv TAG VENV PYTHON
ensure_venv() {
    local tag="$1" venv="$2" python="$3" want have
    if [ ! -x "$python" ]; then
        echo "$tag: $python not found; run scripts/install-deps.sh first" >&2
        exit 1
    fi
    umask 022
    want="$("$python" -c 'import sys; print(sys.base_prefix, sys.version_info[:2])')"
    have="$("$venv/bin/python" -c 'import sys; print(sys.base_prefix, sys.version_info[:2])' 2>/dev/null || true)"
    if [ "$have" != "$want" ]; then
        echo "$tag: creating $venv with $python"
        rm -rf "$venv"
        mkdir -p "$(dirname "$venv")"
        "$python" -m venv "$venv"
    fi
}

# Copy the checkout SRC (a clone or a worktree: tracked and untracked files,
# no .git, nothing .gitignore'd such as build/) into the directory DEST.
#   copy_checkout SRC DEST
copy_checkout() {
    local src="$1" dest="$2"
    if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$src" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) \
            | tar -C "$dest" -xf -
    else
        (cd "$src" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C "$dest" -xf -
    fi
}
