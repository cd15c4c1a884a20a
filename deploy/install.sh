#!/usr/bin/env bash
# Installs Rampart as a systemd service, or removes it.
#
#   deploy/install.sh                  build (release) and install, then enable and start the
#                                      service when systemd is running
#   deploy/install.sh --uninstall      stop, disable and remove what the install added; the
#                                      configuration (/etc/rampart) and state (/var/lib/rampart)
#                                      stay, unless --purge is given too
#   --binary PATH                      install this binary instead of building
#   --root DIR                         install under DIR (staging, packaging, tests); systemctl
#                                      is then never called
#
# Installs /usr/local/bin/rampart, /etc/systemd/system/rampart.service, a system user `rampart`,
# the documentation and example playbooks under /usr/local/share/doc/rampart, and, only where
# absent, the example configuration as /etc/rampart/rampart.yaml with empty playbooks/ and lists/
# directories: an existing configuration is never overwritten, and no playbook is active until
# you add one. With --root, no user is created and files stay root's.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=""
BINARY=""
MODE=install
PURGE=no
while [ $# -gt 0 ]; do
    case "$1" in
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=yes ;;
        --binary) BINARY=$2; shift ;;
        --root) ROOT=${2%/}; shift ;;
        -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (or with --root DIR)" >&2; exit 1; }

BIN=$ROOT/usr/local/bin/rampart
UNIT=$ROOT/etc/systemd/system/rampart.service
DOC=$ROOT/usr/local/share/doc/rampart
ETC=$ROOT/etc/rampart
STATE=$ROOT/var/lib/rampart
# systemctl only for the real root, and only when systemd runs.
systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if [ "$MODE" = uninstall ]; then
    if systemd_running; then
        systemctl disable --now rampart.service 2>/dev/null || true
    fi
    rm -f "$BIN" "$UNIT"
    rm -rf "$DOC"
    systemd_running && systemctl daemon-reload
    if [ "$PURGE" = yes ]; then
        rm -rf "$ETC" "$STATE"
        [ -z "$ROOT" ] && getent passwd rampart >/dev/null && userdel rampart
        echo "removed rampart, its user, its configuration and its state"
    else
        echo "removed rampart; kept $ETC and $STATE (--purge removes them)"
    fi
    exit 0
fi

if [ -z "$BINARY" ]; then
    swift build -c release --product rampart
    BINARY=$(swift build -c release --show-bin-path)/rampart
fi
[ -x "$BINARY" ] || { echo "install.sh: $BINARY is not an executable" >&2; exit 1; }

install -d -m 0755 "$(dirname "$BIN")" "$(dirname "$UNIT")" "$DOC/playbooks"
install -m 0755 "$BINARY" "$BIN"
install -m 0644 deploy/rampart.service "$UNIT"
install -m 0644 README.md docs/*.md deploy/rampart.example.yaml "$DOC/"
install -m 0644 playbooks/*.yaml "$DOC/playbooks/"
# The service's user: the configuration is readable by its group, the state is its own.
GROUP=root
if [ -z "$ROOT" ]; then
    getent passwd rampart >/dev/null || useradd --system --user-group --home-dir /var/lib/rampart --no-create-home --shell /usr/sbin/nologin rampart
    GROUP=rampart
fi
install -d -m 0750 -g "$GROUP" "$ETC" "$ETC/playbooks" "$ETC/lists"
if [ -e "$ETC/rampart.yaml" ]; then
    echo "kept the existing $ETC/rampart.yaml"
else
    install -m 0640 -g "$GROUP" deploy/rampart.example.yaml "$ETC/rampart.yaml"
    echo "installed $ETC/rampart.yaml: set node.id, api_keys (rampart token) and safety.never_block before relying on it"
fi
if systemd_running; then
    systemctl daemon-reload
    systemctl enable --now rampart.service
    systemctl --no-pager status rampart.service | head -5 || true
else
    echo "installed; systemd is not running here, so the service was not started"
fi
