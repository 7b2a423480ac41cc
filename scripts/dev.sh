#!/usr/bin/env bash
# Set up everything avsd needs on Debian / Raspberry Pi OS (apt packages + a virtualenv in .venv), then:
#   scripts/dev.sh demo [ARGS...]   run the offline demo (`avsd demo`) against the built-in emulator
#   scripts/dev.sh test [ARGS...]   run the whole test suite (pytest), plus ruff and mypy
#   scripts/dev.sh setup            only set up
# Needs root (or sudo) for apt; the virtualenv belongs to whoever owns the checkout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
mode="${1:-setup}"
[ $# -gt 0 ] && shift

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "dev.sh: need root for: $*" >&2; exit 1; fi
}

missing_apt_packages() {
    local pkg
    while read -r pkg; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done < <(grep -Ev '^\s*(#|$)' scripts/apt-packages.txt)
}

missing=$(missing_apt_packages | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
    echo "dev.sh: installing Debian packages: $missing"
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "dev.sh: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
stamp=.venv/.avsd-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "dev.sh: installing avsd and its test dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi

# Bespoken's own clients (virtual-device-sdk, bespoken-tools' bst), pinned in tests/node, for the virtual-device
# tests. Node and npm from Debian's packages unless the machine already has them (e.g. NodeSource's nodejs).
install_node_clients() {
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        echo "dev.sh: installing Node.js and npm"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    fi
    local lock=tests/node/package-lock.json marker=tests/node/node_modules/.avsd-installed
    if [ ! -f "$marker" ] || [ "$lock" -nt "$marker" ]; then
        echo "dev.sh: installing Bespoken's npm clients into tests/node"
        (cd tests/node && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
        touch "$marker"
    fi
}

case "$mode" in
    setup) echo "dev.sh: ready. Activate with: . .venv/bin/activate" ;;
    demo) exec .venv/bin/avsd demo "$@" ;;
    test)
        install_node_clients
        .venv/bin/ruff check avsd tests bench
        .venv/bin/mypy
        # pytest exits 5 when it collected nothing: that is a failure here, never a pass.
        set +e
        .venv/bin/python -m pytest "$@"
        rc=$?
        set -e
        if [ "$rc" -eq 5 ]; then echo "dev.sh: pytest collected no tests" >&2; exit 1; fi
        exit "$rc"
        ;;
    *) echo "usage: scripts/dev.sh {setup|demo|test} [ARGS...]" >&2; exit 2 ;;
esac
