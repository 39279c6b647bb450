#!/bin/sh
# deploy/rollback.sh [--restore-backup] [TAG]: put production back on TAG (default: the release
# tag before the one it runs).
#
# Migrations are forward-only: an older release does not undo the migrations a newer one
# applied, and `lugh doctor --check` fails while the database is newer than the code. So when
# the newer release added migrations, a rollback also needs the database as it was before the
# deploy: --restore-backup restores the backup deploy/promote.sh took just before it (work done
# in production since then is lost). Without migrations in between, only the code goes back.
set -eu
here=$(dirname "$0")
. "$here/hooks.sh"

restore=
if [ "${1:-}" = "--restore-backup" ]; then restore=1; shift; fi
src=$LUGH_HOME/prod/src
[ -f "$LUGH_HOME/prod/deployed" ] || die "Production has never been deployed; nothing to roll back."
current=$(cat "$LUGH_HOME/prod/deployed")
git -C "$src" fetch --quiet --force --tags origin
if [ $# -ge 1 ]; then
    target=$1
else
    target=$(git -C "$src" tag --list 'v*' --sort=-version:refname \
        | awk -v cur="$current" 'found { print; exit } $0 == cur { found = 1 }')
    [ -n "$target" ] || die "No release before $current to roll back to."
fi
git -C "$src" rev-parse --verify --quiet "refs/tags/$target^{commit}" >/dev/null \
    || die "There is no release tag '$target'."

added=$(git -C "$src" diff --name-only --diff-filter=A "$target" HEAD -- lugh/migrations)
if [ -n "$added" ]; then
    [ -n "$restore" ] || die "$current added migrations that $target does not know ($(echo $added | tr ' ' ',')); \
roll back with --restore-backup to restore the database from before the deploy, or fix forward."
    backup=$(cat "$LUGH_HOME/prod/pre-deploy-backup" 2>/dev/null) \
        || die "No pre-deploy backup is recorded; restore one by hand (lugh restore-backup)."
    hook RESTORE prod "$backup"
    say "✓ production's database restored from $backup"
fi
"$here/deploy.sh" prod "$target"
say "✓ production rolled back from $current to $target"
