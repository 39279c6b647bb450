#!/bin/sh
# deploy/deploy.sh INSTANCE REF: put an instance (staging or prod) on a branch or a release tag
# of the origin repository — fetch, check out, install, restart — and wait until its checks
# pass. Exits non-zero, leaving the instance on REF, when they do not.
set -eu
. "$(dirname "$0")/hooks.sh"

[ $# -eq 2 ] || die "usage: deploy/deploy.sh staging|prod BRANCH-OR-TAG"
instance=$1 ref=$2
case $instance in staging|prod) ;; *) die "The instance must be staging or prod, got '$instance'." ;; esac
src=$LUGH_HOME/$instance/src
[ -d "$src/.git" ] || die "$src is not a checkout; run scripts/install-server.sh first."

git -C "$src" fetch --quiet --force --tags origin "+refs/heads/*:refs/remotes/origin/*"
commit=$(git -C "$src" rev-parse --verify --quiet "refs/remotes/origin/$ref^{commit}" \
    || git -C "$src" rev-parse --verify --quiet "refs/tags/$ref^{commit}") \
    || die "The origin repository has no branch or tag '$ref'."
git -C "$src" checkout --quiet --detach "$commit"
printf '%s\n' "$ref" > "$LUGH_HOME/$instance/deployed"
say "→ $instance: $ref ($(git -C "$src" rev-parse --short HEAD))"

hook INSTALL "$instance"
hook RESTART "$instance"
healthy "$instance" || die "$instance runs $ref but fails its checks (lugh doctor --check)."
say "✓ $instance runs $ref and passes its checks"
