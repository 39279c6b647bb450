# Sourced by deploy.sh, promote.sh and rollback.sh: settings and the commands that install,
# restart, check, back up and restore an instance. Each LUGH_* command can be overridden from
# the environment (the tests do); they run as `sh -c "$command" sh INSTANCE DIR [FILE]`.
#
# LUGH_DEPLOY=systemd (default): the units in deploy/systemd, as scripts/install-server.sh sets
# them up. LUGH_DEPLOY=docker: docker-compose.<instance>.yml in the instance's checkout.

LUGH_HOME=${LUGH_HOME:-/opt/lugh}
LUGH_DEPLOY=${LUGH_DEPLOY:-systemd}
LUGH_STAGING_BRANCH=${LUGH_STAGING_BRANCH:-main}
LUGH_CHECK_TIMEOUT=${LUGH_CHECK_TIMEOUT:-120}
LUGH_ETC=${LUGH_ETC:-/etc/lugh}
export LUGH_ETC

# As the service runs: user lugh, the instance's env file, its data dir. The env file is read
# here, as root (it is root's alone, mode 0600, as systemd reads it for the unit), and runuser
# keeps the environment it was given.
_as_service='sh -c '\''set -a; . "$3"; set +a; export LUGH_INSTANCE="$1" LUGH_DATA_DIR="/var/lib/lugh/$1"; shift 3; exec runuser -u lugh -- "$@"'\'' sh "$1" "$2" "$LUGH_ETC/$1.env"'

case $LUGH_DEPLOY in
systemd)
    : "${LUGH_INSTALL:=cd \"\$2/src\" && VENV=\"\$2/venv\" EDITABLE= EXTRAS= sh scripts/install.sh}"
    : "${LUGH_RESTART:=systemctl restart \"lugh@\$1\"}"
    : "${LUGH_CHECK:=$_as_service \"\$2/venv/bin/lugh\" doctor --check}"
    : "${LUGH_BACKUP:=$_as_service \"\$2/venv/bin/lugh\" backup --dir \"/var/backups/lugh/\$1\"}"
    : "${LUGH_RESTORE:=systemctl stop \"lugh@\$1\" && $_as_service \"\$2/venv/bin/lugh\" restore-backup --yes \"\$3\"}"
    ;;
docker)
    _compose='cd "$2/src" && docker compose -f "docker-compose.$1.yml"'
    : "${LUGH_INSTALL:=true}"
    : "${LUGH_RESTART:=$_compose up -d --build}"
    : "${LUGH_CHECK:=$_compose exec -T lugh lugh doctor --check}"
    # The backup service holds the backups volume; lugh is stopped while its database is replaced.
    : "${LUGH_BACKUP:=$_compose exec -T backup lugh backup --dir /var/backups/lugh}"
    : "${LUGH_RESTORE:=$_compose stop lugh && $_compose exec -T backup lugh restore-backup --yes \"\$3\"}"
    ;;
*)
    echo "LUGH_DEPLOY must be systemd or docker, got '$LUGH_DEPLOY'." >&2
    exit 2
    ;;
esac

say() { printf '%s\n' "$*" >&2; }
die() { say "✗ $*"; exit 1; }

# hook NAME INSTANCE [FILE]: run the command LUGH_<NAME> for an instance.
hook() {
    eval "_cmd=\$LUGH_$1"
    sh -c "$_cmd" sh "$2" "$LUGH_HOME/$2" ${3:+"$3"}
}

# healthy INSTANCE: the check passes within LUGH_CHECK_TIMEOUT seconds (a restarted instance
# needs a moment to start; its health check is what decides).
healthy() {
    _deadline=$(( $(date +%s) + LUGH_CHECK_TIMEOUT ))
    until hook CHECK "$1"; do
        [ "$(date +%s)" -lt "$_deadline" ] || return 1
        sleep 2
    done
}
