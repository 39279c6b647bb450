#!/bin/sh
# System packages the tests need, installed only where missing (CI runs as root on Debian):
# git (repositories), bubblewrap (the agents' sandbox), redis-server (the Redis bus),
# DejaVu fonts (rendered diff images), systemd (systemd-analyze verifies the units in deploy/).
set -eu
missing=""
command -v git >/dev/null 2>&1 || missing="$missing git"
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || missing="$missing fonts-dejavu-core"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing system packages:$missing. Install them (sudo apt-get install$missing) and run again." >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
