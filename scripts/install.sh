#!/usr/bin/env bash
# Install or upgrade avsd on Raspberry Pi OS Bookworm / Debian 12+.
#
#   sudo scripts/install.sh                 install (or upgrade: run it again) into /opt/avsd, /etc/avsd, systemd
#   scripts/install.sh --dry-run            print every action, change nothing
#   scripts/install.sh --prefix DIR --no-systemd --no-apt --pip-args "--no-deps"    (CI: a throw-away tree)
#
# What it does, in order: apt packages (scripts/apt-packages.txt); the avsd user in the audio/gpio/spi groups;
# a virtual environment in /opt/avsd/venv with avsd[pi]; /etc/avsd/avsd.toml only if absent (a user's config is
# never overwritten, and nobody's ~/.asoundrc is touched); the systemd unit, enabled; the next step.
# With --prefix DIR everything lands under DIR (DIR/opt/avsd, DIR/etc/avsd, DIR/etc/systemd/system, ...) and the
# unit's paths point there; the system (apt, users, udev, systemctl) is left alone.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: install.sh [options]
  --dry-run          print every action, change nothing
  --prefix DIR       install everything under DIR (implies: no apt, no user/groups, no systemctl)
  --no-systemd       install the unit file but do not run systemctl (daemon-reload/enable/restart)
  --no-apt           do not install Debian packages
  --extras LIST      pip extras of avsd to install (default: pi; "" for none)
  --pip-args ARGS    extra arguments for the final pip install (also: $AVSD_PIP_ARGS), e.g. "--no-deps"
  --python PATH      interpreter for the virtual environment (default: python3; needs >= 3.11)
  --client-id ID     your AVS product's LWA client id: a new config talks to Amazon (avs.backend = "avs");
                     without it a new config runs the offline assistant (avs.backend = "assistant")
  -h, --help         this text
EOF
}

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
PREFIX=""
SYSTEMD=1
APT=1
EXTRAS="pi"
PIP_ARGS="${AVSD_PIP_ARGS:-}"
PYTHON="python3"
CLIENT_ID=""

while (($#)); do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
        --prefix=*) PREFIX="${1#*=}" ;;
        --no-systemd) SYSTEMD=0 ;;
        --no-apt) APT=0 ;;
        --extras) EXTRAS="${2?--extras needs a list}"; shift ;;
        --extras=*) EXTRAS="${1#*=}" ;;
        --pip-args) PIP_ARGS="${2?--pip-args needs a value}"; shift ;;
        --pip-args=*) PIP_ARGS="${1#*=}" ;;
        --python) PYTHON="${2:?--python needs a path}"; shift ;;
        --python=*) PYTHON="${1#*=}" ;;
        --client-id) CLIENT_ID="${2:?--client-id needs a value}"; shift ;;
        --client-id=*) CLIENT_ID="${1#*=}" ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# An empty ROOT means the real system; otherwise an absolute path without a trailing slash.
ROOT=""
if [[ -n "$PREFIX" && "$PREFIX" != "/" ]]; then
    [[ "$PREFIX" == /* ]] || PREFIX="$PWD/$PREFIX"
    ROOT="${PREFIX%/}"
fi
SYSTEM=0
[[ -z "$ROOT" ]] && SYSTEM=1

OPT="$ROOT/opt/avsd"
VENV="$OPT/venv"
ETC="$ROOT/etc/avsd"
CONFIG="$ETC/avsd.toml"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/avsd.service"
UDEV_DIR="$ROOT/etc/udev/rules.d"
BIN_LINK="$ROOT/usr/local/bin/avsd"
STATE_DIR="$ROOT/var/lib/avsd"

SUMMARY=()
say() { printf '==> %s\n' "$*"; }
note() { SUMMARY+=("$*"); }
# Every change goes through run: printed always, executed unless --dry-run.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    ((DRY_RUN)) || "$@"
}

# --- preflight -------------------------------------------------------------------------------------------------
if ((SYSTEM)) && ((EUID != 0)) && ! ((DRY_RUN)); then
    echo "install.sh: installing into the system needs root (sudo), or use --prefix DIR" >&2
    exit 1
fi
if ((SYSTEM)) && [[ -r /etc/os-release ]]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    if [[ "${ID:-}" != debian && "${ID:-}" != raspbian && "${ID_LIKE:-}" != *debian* ]] ||
        [[ "${VERSION_ID:-0}" =~ ^[0-9]+$ && "${VERSION_ID}" -lt 12 ]]; then
        say "warning: tested on Raspberry Pi OS Bookworm / Debian 12+; this is ${PRETTY_NAME:-unknown}"
    fi
fi
((DRY_RUN)) && say "dry run: nothing will be changed"

# --- apt packages ----------------------------------------------------------------------------------------------
if ((APT)) && ((SYSTEM)); then
    mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$SRC/scripts/apt-packages.txt")
    say "installing ${#PACKAGES[@]} Debian packages"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    note "apt: ${#PACKAGES[@]} packages installed or already present"
elif ((APT)); then
    say "skipping apt (--prefix installs leave the system alone)"
fi

if ! command -v "$PYTHON" >/dev/null; then
    echo "install.sh: $PYTHON not found (install python3 and python3-venv, or pass --python)" >&2
    ((DRY_RUN)) || exit 1
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: avsd needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi

# --- user, groups, device access -------------------------------------------------------------------------------
if ((SYSTEM)); then
    for group in audio gpio spi; do
        if ! getent group "$group" >/dev/null; then
            run groupadd --system "$group"
        fi
    done
    if id avsd >/dev/null 2>&1; then
        run usermod --append --groups audio,gpio,spi avsd
        note "user: avsd exists (groups audio, gpio, spi ensured)"
    else
        run useradd --system --user-group --home-dir /var/lib/avsd --no-create-home \
            --shell /usr/sbin/nologin --groups audio,gpio,spi --comment "avsd Alexa appliance" avsd
        note "user: avsd created (groups audio, gpio, spi)"
    fi
fi
# Raspberry Pi OS ships 99-com.rules giving gpiochip*/spidev* to the gpio/spi groups; plain Debian does not.
if [[ ! -e "$UDEV_DIR/99-com.rules" && ! -e "$ROOT/usr/lib/udev/rules.d/99-com.rules" ]]; then
    run install -D -m 0644 "$SRC/systemd/60-avsd-gpio.rules" "$UDEV_DIR/60-avsd-gpio.rules"
    if ((SYSTEM)) && command -v udevadm >/dev/null; then
        run udevadm control --reload
        run udevadm trigger --subsystem-match=gpio --subsystem-match=spidev
    fi
fi

# --- virtual environment and avsd ------------------------------------------------------------------------------
if [[ -x "$VENV/bin/python" ]]; then
    say "upgrading avsd in $VENV"
    ACTION="upgraded"
else
    say "creating $VENV"
    run mkdir -p "$OPT"
    run "$PYTHON" -m venv "$VENV"
    ACTION="installed"
fi
# Build from a clean copy of the source, so pip never writes build/ or *.egg-info into the checkout.
if ((DRY_RUN)); then
    STAGE="<temporary copy of $SRC>"
    printf '+ copy avsd/, setup.cfg, pyproject.toml, README.md from %s to a temporary directory\n' "$SRC"
else
    STAGE="$(mktemp -d "${TMPDIR:-/tmp}/avsd-install.XXXXXX")"
    trap 'rm -rf "$STAGE"' EXIT
    for item in avsd setup.cfg pyproject.toml README.md LICENSE MANIFEST.in; do
        if [[ -e "$SRC/$item" ]]; then cp -R "$SRC/$item" "$STAGE/"; fi
    done
    find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
    # setup.cfg reads README.md as the long description.
    [[ -e "$STAGE/README.md" ]] || echo "avsd" >"$STAGE/README.md"
fi
REQ="$STAGE"
[[ -n "$EXTRAS" ]] && REQ="${STAGE}[${EXTRAS}]"
# shellcheck disable=SC2086  # PIP_ARGS is a list of words on purpose
run "$VENV/bin/python" -m pip install --upgrade --disable-pip-version-check --quiet $PIP_ARGS "$REQ"
if [[ -e "$SRC/README.md" ]]; then
    run install -m 0644 "$SRC/README.md" "$OPT/README.md"
fi
run mkdir -p "$(dirname "$BIN_LINK")"
run ln -sfn "$VENV/bin/avsd" "$BIN_LINK"
note "avsd: $ACTION in $VENV${EXTRAS:+ (extras: $EXTRAS)}; command: $BIN_LINK"

# --- configuration (never overwritten) -------------------------------------------------------------------------
if [[ -e "$CONFIG" ]]; then
    note "config: kept your $CONFIG"
else
    run mkdir -p "$ETC"
    if [[ -e "$SRC/config/avsd.toml" ]]; then
        run install -m 0644 "$SRC/config/avsd.toml" "$CONFIG"
        # No Amazon credentials given: the appliance answers with the offline assistant (Amazon no longer
        # registers new AVS products). With --client-id it talks to Amazon after `avsd login`.
        if [[ -n "$CLIENT_ID" ]]; then
            run sed -i "s|^client_id = \"\"|client_id = \"$CLIENT_ID\"|" "$CONFIG"
            note "config: auth.client_id = $CLIENT_ID, avs.backend = avs (Amazon)"
        else
            run sed -i 's|^backend = "avs"|backend = "assistant"|' "$CONFIG"
            note "config: avs.backend = assistant (no --client-id: the offline assistant answers)"
        fi
    else
        printf '+ write %s (commented placeholder)\n' "$CONFIG"
        if ! ((DRY_RUN)); then
            cat >"$CONFIG" <<'EOF'
# avsd configuration. Every key is optional; `avsd run` uses the documented defaults for anything missing.
# See README.md ("Configuration") for the keys, e.g.:
#
# [button]
# pin = 17
#
# [leds]
# kind = "apa102"
EOF
            chmod 0644 "$CONFIG"
        fi
    fi
    note "config: created $CONFIG"
fi
if ((SYSTEM)); then
    run install -d -m 0700 -o avsd -g avsd "$STATE_DIR"
fi

# --- systemd unit ----------------------------------------------------------------------------------------------
run mkdir -p "$UNIT_DIR"
printf '+ install %s -> %s (paths under %s)\n' "$SRC/systemd/avsd.service" "$UNIT" "${ROOT:-/}"
if ! ((DRY_RUN)); then
    sed -e "s#/opt/avsd#$OPT#g" -e "s#/etc/avsd/#$ETC/#g" "$SRC/systemd/avsd.service" >"$UNIT.tmp"
    chmod 0644 "$UNIT.tmp"
    mv -f "$UNIT.tmp" "$UNIT"
fi
if ((SYSTEM)) && ((SYSTEMD)) && [[ -d /run/systemd/system ]]; then
    run systemctl daemon-reload
    run systemctl enable avsd.service
    if systemctl is-active --quiet avsd.service; then
        run systemctl restart avsd.service
        note "service: restarted on the new version"
    else
        note "service: enabled (starts at boot)"
    fi
else
    note "unit: $UNIT (systemctl not run)"
fi

# --- summary ---------------------------------------------------------------------------------------------------
echo
say "avsd ${ACTION}${ROOT:+ under $ROOT}$( ((DRY_RUN)) && echo ' (dry run: nothing changed)')"
for line in "${SUMMARY[@]}"; do
    printf '    %s\n' "$line"
done
echo
if [[ -z "$CLIENT_ID" ]] && grep -q '^backend = "assistant"' "$CONFIG" 2>/dev/null; then
    echo "The offline assistant answers (avs.backend = \"assistant\" in $CONFIG): no Amazon account needed."
    echo "Check it with: $BIN_LINK doctor --config $CONFIG"
    exit 0
fi
echo "Next step: link the device to your Amazon account:"
if ((SYSTEM)); then
    echo "    sudo -u avsd $BIN_LINK login --config $CONFIG"
    echo "then: sudo systemctl start avsd && journalctl -u avsd -f"
else
    echo "    $BIN_LINK login --config $CONFIG"
fi
