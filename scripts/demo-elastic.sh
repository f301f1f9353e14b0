#!/usr/bin/env bash
# The elastic half of the main job (runbook "Deployment with Kubernetes"),
# on real local components: a package index, an OCI registry, bare git remotes
# for swh-apps and swh-charts (testbed-elastic). A module release
# (swh.loader.git 1.2.0) is tagged on the module's remote and has reached the
# index; swh-deploy finds the apps that
# depend on it, freezes, builds and pushes a YYYYMMDD.N image with buildah (a
# real one: FROM the swh-base app's image, itself FROM a Debian bookworm
# Python image that the test bed makes with debootstrap, cached per machine;
# the frozen requirements are installed from the index during the build),
# bumps the chart and promotes it staging -> production. Kubernetes and Argo CD
# are the test bed's STAND-IN (kube-standin: real JSON shapes, simulated
# automated sync and rolling update; not a real cluster): node labels are
# checked against the chart, and each promotion waits until Argo CD has the
# environment live and healthy (the promotion to production is gated on it).
# Then: a database migration in the toolbox pod (cluster migrate), a
# promotion refused before anything is pushed because its image is not in the
# registry (chart show --check, chart promote), and a rollback of production
# (a revert commit, then the Argo CD wait).
# Usage: scripts/demo-elastic.sh [BIN_DIR]   (BIN_DIR holds swh-deploy and testbed-elastic)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$repo/target/release}
work=$(mktemp -d /tmp/swh-deploy-elastic.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "elastic: starting the index, the registry, the git remotes and the Kubernetes/Argo CD stand-in; pushing the base images (the first run on a machine makes the Python image with debootstrap: 1-2 min)"
"$bin/testbed-elastic" "$work/bed" --publish swh.loader.git==1.2.0 --pending-migration storage >"$work/elastic.log" 2>&1 &
pid=$!
for _ in $(seq 1 6000); do
  grep -q '^ready' "$work/elastic.log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/elastic.log"; exit 1; }
  sleep 0.1
done
grep -q '^ready' "$work/elastic.log" || { echo "testbed-elastic did not get ready in 10 min" >&2; cat "$work/elastic.log"; exit 1; }
cat "$work/elastic.log"
# shellcheck disable=SC1091
. "$work/bed/env.sh"
sd() { run "$bin/swh-deploy" "$@"; }

step "release: tag v1.2.0 (annotated) on the module's remote, then wait until it is published"
remotes=$(awk '/^  remotes /{print $2}' "$work/elastic.log")
run git clone -q "$remotes/swh-loader-git.git" "$work/swh-loader-git"
# The tagger of the demo (a real release takes the developer's git identity
# and signs with --sign or tag.gpgSign).
export GIT_COMMITTER_NAME="swh-deploy demo" GIT_COMMITTER_EMAIL="demo@example.org"
sd release tag 1.2.0 --repo "$work/swh-loader-git" --no-sign --dry-run
sd release tag 1.2.0 --repo "$work/swh-loader-git" --no-sign
run git --git-dir "$remotes/swh-loader-git.git" tag -n1 --list 'v*'
sd release wait swh.loader.git 1.2.0 --timeout 1m --interval 200ms

step "which apps does the release swh.loader.git v1.2.0 touch?"
sd app dependents --module swh.loader.git --version v1.2.0
step "freeze, build with buildah, push the image and tag swh-apps"
sd app build swh-loader-git --push --builder buildah --index-url "$SWH_DEPLOY_INDEX_URL"
version=$(git -C "$work/bed/swh-apps" describe --tags --abbrev=0 | sed 's/^swh-loader-git-//')
step "bump the chart on swh-next-version ($version)"
sd chart bump "swh-loader-git=$version" --module swh.loader.git --module-version v1.2.0
sd chart show --diff
step "are the nodes labelled for the loaders? (chart nodeAffinity vs node labels)"
sd cluster labels check --context archive-staging-rke2 --app loaders --app listers
step "promote to staging, wait for Argo CD, then production"
sd chart promote staging
sd cluster wait staging --interval 200ms --timeout 2m
sd chart promote production
sd cluster wait production --interval 200ms --timeout 2m
sd chart show
step "the whole chain in one command: swh-deploy ship (the plan, then every step finds its result already there)"
sd ship swh.loader.git 1.2.0 --elastic --repo "$work/swh-loader-git" --dry-run
sd ship swh.loader.git 1.2.0 --elastic --repo "$work/swh-loader-git" --interval 200ms --timeout 2m
step "database migration in the toolbox pod (check, migrate, check again; exec over the stand-in's WebSocket exec API)"
sd cluster migrate staging storage --dry-run
sd cluster migrate staging storage --yes
sd cluster migrate staging storage
step "a release whose image is not in the registry: refused before promoting"
sd chart bump "swh-loader-git=20991231.1" --module swh.loader.git --module-version v1.2.0
if sd chart show --check --branch swh-next-version; then echo "demo: chart show --check should have failed" >&2; exit 1; fi
if sd chart promote staging; then echo "demo: the promotion should have been refused" >&2; exit 1; fi
step "roll production back (a revert commit on top, never a force-push; then the Argo CD wait)"
sd chart rollback production --dry-run
sd chart rollback production --interval 200ms --timeout 2m
sd chart show
step "what was done (journal)"
sd history
