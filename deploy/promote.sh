#!/bin/sh
# deploy/promote.sh [BRANCH]: promote a change from staging to production.
#
#   1. merge BRANCH (if given) into the staging branch (LUGH_STAGING_BRANCH, default main) at
#      origin;
#   2. deploy staging at that branch and wait for its checks (lugh doctor --check);
#   3. tag the commit staging runs as the next release (vYYYY.MM.DD.N) and push the tag;
#   4. back up production's database, then deploy production at the tag; if production fails
#      its checks, roll it back to the release it ran before (deploy/rollback.sh).
#
# Staging failing its checks stops everything: nothing is tagged, production is unchanged.
set -eu
here=$(dirname "$0")
. "$here/hooks.sh"

staging_src=$LUGH_HOME/staging/src
[ -d "$staging_src/.git" ] || die "$staging_src is not a checkout; run scripts/install-server.sh first."

if [ $# -ge 1 ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    git clone --quiet "$(git -C "$staging_src" remote get-url origin)" "$work/repo"
    git -C "$work/repo" checkout --quiet "$LUGH_STAGING_BRANCH"
    git -C "$work/repo" -c user.name="${GIT_AUTHOR_NAME:-Lugh release}" \
        -c user.email="${GIT_AUTHOR_EMAIL:-lugh@localhost}" \
        merge --quiet --no-ff -m "Merge $1 into $LUGH_STAGING_BRANCH" "origin/$1" \
        || die "$1 does not merge cleanly into $LUGH_STAGING_BRANCH; merge it by hand."
    git -C "$work/repo" push --quiet origin "$LUGH_STAGING_BRANCH"
    say "✓ merged $1 into $LUGH_STAGING_BRANCH"
fi

"$here/deploy.sh" staging "$LUGH_STAGING_BRANCH" \
    || die "Staging fails its checks: nothing was tagged and production is unchanged."

commit=$(git -C "$staging_src" rev-parse HEAD)
today=v$(date -u +%Y.%m.%d)
n=$(git -C "$staging_src" tag --list "$today.*" | wc -l)
tag=$today.$((n + 1))
git -C "$staging_src" -c user.name="${GIT_AUTHOR_NAME:-Lugh release}" \
    -c user.email="${GIT_AUTHOR_EMAIL:-lugh@localhost}" \
    tag -a "$tag" -m "Lugh $tag, checked on staging" "$commit"
git -C "$staging_src" push --quiet origin "refs/tags/$tag"
say "✓ tagged $tag"

if [ -f "$LUGH_HOME/prod/deployed" ]; then
    backup=$(hook BACKUP prod | sed -n 's/^✓ Backed up to //p' | tail -n 1)
    [ -n "$backup" ] || die "The production backup failed; production is unchanged."
    printf '%s\n' "$backup" > "$LUGH_HOME/prod/pre-deploy-backup"
    say "✓ production backed up to $backup"
fi
if ! "$here/deploy.sh" prod "$tag"; then
    say "✗ production fails its checks on $tag; rolling back"
    "$here/rollback.sh" || true
    exit 1
fi
say "✓ promoted $tag to production"
