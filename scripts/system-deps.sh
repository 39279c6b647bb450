#!/bin/sh
# System packages the tests need; installed only where missing (CI runs as root on Debian).
set -eu
missing=""
command -v git >/dev/null 2>&1 || missing="$missing git"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "Missing system packages:$missing. Install them (sudo apt-get install$missing) and run again." >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
