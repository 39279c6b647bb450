#!/bin/sh
# Lugh on a plain Debian (12+) or Ubuntu (22.04+) server, without Docker: both instances side
# by side, staging (@LughDev) following a branch and prod (@Lugh) a release tag, each with its
# own code, settings, data dir (with its embedded PostgreSQL), backups and systemd units.
#
#   sudo sh scripts/install-server.sh [ORIGIN]
#
# ORIGIN is the git repository to deploy from (default: this checkout's origin). Run it again
# at any time: it changes only what is missing. Then fill in /etc/lugh/staging.env and
# /etc/lugh/prod.env and restart both (docs/deploy.md walks through it).
#
#   /opt/lugh/<instance>/src, /opt/lugh/<instance>/venv   code (deploy/deploy.sh moves it)
#   /etc/lugh/<instance>.env                              settings and secrets (root:root 0600)
#   /var/lib/lugh/<instance>                              data dir, embedded PostgreSQL
#   /var/backups/lugh/<instance>                          daily backups (14 kept)
#   /srv/lugh/<instance>                                  repositories the instance may write
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
origin=${1:-$(git -C "$here" remote get-url origin 2>/dev/null || echo "$here")}
STAGING_BRANCH=${LUGH_STAGING_BRANCH:-main}

[ "$(id -u)" = 0 ] || { echo "Run it as root: sudo sh scripts/install-server.sh" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "This script is for Debian or Ubuntu (apt-get)." >&2; exit 1; }

echo "→ system packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv git bubblewrap fonts-dejavu-core ca-certificates curl >/dev/null

echo "→ the lugh user"
id lugh >/dev/null 2>&1 || useradd --system --home-dir /var/lib/lugh --shell /usr/sbin/nologin lugh
install -d -o root -g root -m 0755 /opt/lugh /etc/lugh
install -d -o lugh -g lugh -m 0700 /var/lib/lugh /var/backups/lugh

for instance in staging prod; do
    echo "→ $instance"
    install -d -o lugh -g lugh -m 0700 "/var/lib/lugh/$instance" "/var/backups/lugh/$instance"
    install -d -o lugh -g lugh -m 0750 "/srv/lugh/$instance"
    install -d -o root -g root -m 0755 "/opt/lugh/$instance"
    [ -d "/opt/lugh/$instance/src/.git" ] || git clone --quiet "$origin" "/opt/lugh/$instance/src"
    env_file=/etc/lugh/$instance.env
    if [ ! -f "$env_file" ]; then
        # The example names the instance and its MCP port; secrets stay empty until you set them.
        (umask 077 && sed -e "s|^LUGH_DATA_DIR=.*|LUGH_DATA_DIR=/var/lib/lugh/$instance|" \
            "$here/.env.$instance.example" > "$env_file")
    fi
    # Root's alone (an earlier install made it root:lugh 0640): systemd and deploy/hooks.sh read
    # it as root and hand the service its environment, so neither the lugh user nor its agents'
    # commands can read the secrets.
    chown root:root "$env_file"
    chmod 0600 "$env_file"
done

echo "→ systemd units"
install -m 0644 "$here"/deploy/systemd/lugh@.service "$here"/deploy/systemd/lugh-backup@.service \
    "$here"/deploy/systemd/lugh-backup@.timer /etc/systemd/system/
systemctl daemon-reload

# Code: staging on the branch, prod on the newest release tag (the branch until there is one).
git -C /opt/lugh/prod/src fetch --quiet --tags origin
release=$(git -C /opt/lugh/prod/src tag --list 'v*' --sort=-version:refname | head -n 1)
for instance in staging prod; do
    systemctl enable --quiet "lugh@$instance" "lugh-backup@$instance.timer"
    systemctl start --quiet "lugh-backup@$instance.timer"
done
export LUGH_DEPLOY=systemd
sh "$here/deploy/deploy.sh" staging "$STAGING_BRANCH" || true
sh "$here/deploy/deploy.sh" prod "${release:-$STAGING_BRANCH}" || true

cat <<DONE

Both instances are installed. Until their tokens are set their checks fail; next:
  1. sudoedit /etc/lugh/staging.env   (TELEGRAM_BOT_TOKEN of @LughDev, your user id, API keys)
  2. sudoedit /etc/lugh/prod.env      (TELEGRAM_BOT_TOKEN of @Lugh, ...)
  3. sudo systemctl restart lugh@staging lugh@prod
  4. sudo -u lugh sh -c 'set -a; . /etc/lugh/prod.env; /opt/lugh/prod/venv/bin/lugh doctor'
Logs: journalctl -u lugh@staging -f      Promote: sudo sh deploy/promote.sh
DONE
