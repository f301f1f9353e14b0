#!/usr/bin/env bash
# The static half of the main job (runbook "Deployment with debian
# packaging"), on real local hosts: 4 systemd hosts (systemd-nspawn in network
# namespaces) with a local apt repository holding python3-swh.storage and
# python3-swh.loader.git 1.0 and 1.1. host[1-2] run the storage RPC server
# (gunicorn-swh-storage, health: GET / with the host's name as Host answers
# the real server's page, titled "Software Heritage storage server"),
# host[3-4] the git loader (swh-worker@loader_git, health: unit active).
# swh-deploy upgrades them from 1.0 to 1.1 in rolling batches (canary first)
# with health gates, then shows the journal and the versions. Then a
# configuration change through the test bed's real Puppet server (pergamon,
# Debian's puppetserver): a new storage setting in its Hiera data reaches the
# hosts with `swh-deploy upgrade --mode config-change` (puppet agent -t first).
# Usage (as root): scripts/demo-static.sh [BIN_DIR]   (BIN_DIR holds swh-deploy and testbed)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$repo/target/release}
name=demo-static-$$
work=$(mktemp -d /tmp/swh-deploy-static.XXXXXX)
up=
cleanup() {
  if [ -n "$up" ]; then "$bin/testbed" --name "$name" down >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "static: starting 4 systemd hosts, the apt repository (1.0 and 1.1) and the Puppet server pergamon"
up=1
run "$bin/testbed" --name "$name" up --hosts 4 --systemd --apt-versions '1.0-1~swh1,1.1-1~swh1' --puppet
cfg=/run/swh-deploy-testbed/$name/ssh_config

# The site file of this test bed.
site=$work/site.toml
cat >"$site" <<EOF
[site]
name = "demo-static"
default_environment = "staging"

[ssh]
config = "$cfg"
user = "root"
connect_timeout = "5s"
fanout = 32

[environments.staging]
description = "the local test bed"

[groups.rpc]
environment = "staging"
nodes = "host[1-2]"

[groups.workers]
environment = "staging"
nodes = "host[3-4]"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]
health = { check = "http", port = 5002, path = "/", expect = "Software Heritage storage server", timeout = "2s", deadline = "30s", interval = "500ms" }

[services.loader-git]
kind = "worker"
units = ["swh-worker@loader_git"]
packages = ["python3-swh.loader.git"]
groups = ["workers"]
health = { check = "systemd", deadline = "30s", interval = "500ms" }
EOF
export SWH_DEPLOY_SITE=$site
export SWH_DEPLOY_JOURNAL=$work/journal.sqlite
sd() { run "$bin/swh-deploy" "$@"; }

step "install 1.0 (storage on host[1-2], git loader on host[3-4])"
apt='apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q'
sd run -F "$cfg" -S -b -w 'host[1-2]' "$apt python3-swh.storage=1.0-1~swh1 >/dev/null && systemctl is-active gunicorn-swh-storage"
sd run -F "$cfg" -S -b -w 'host[3-4]' "$apt python3-swh.loader.git=1.0-1~swh1 >/dev/null && systemctl is-active swh-worker@loader_git"
sd versions --service storage --color always
sd versions --service loader-git --color always

step "what the upgrade will do (dry run)"
sd upgrade --service storage --service loader-git --batch 1,50% --max-fail 1 --dry-run

step "rolling upgrade to 1.1: canary, then batches, each behind its health gate"
sd upgrade --service storage --service loader-git --batch 1,50% --max-fail 1

step "what was done (journal)"
sd history
sd history 1

step "which version runs where"
sd versions --service storage --color always
sd versions --service loader-git --color always

step "config change: Puppet's data on pergamon (this test bed's environment)"
env=/run/swh-deploy-testbed/$name/puppet
mkdir -p "$env/data/hosts"
for h in 1 2; do printf 'swh_testbed::managed: [storage]\n' >"$env/data/hosts/host$h.yaml"; done
for h in 3 4; do printf 'swh_testbed::managed: [loader-git]\n' >"$env/data/hosts/host$h.yaml"; done
# First run: the packages' configuration files become Puppet's (exit 2).
sd run -F "$cfg" -b -w 'host[1-4]' 'puppet agent -t >/dev/null 2>&1; echo "puppet agent -t: exit $?"'
# The change: a new setting in the storage configuration.
sed -i 's/^\(  *\)cls: memory$/&\n\1# demo: a new storage setting/' "$env/data/common.yaml"
run grep -n -B3 'demo: a new storage setting' "$env/data/common.yaml"

step "config-change upgrade: puppet agent -t on each host first (0 and 2 are success), then the upgrade and its health gates"
sd upgrade --service storage --service loader-git --mode config-change --batch 1,50% --max-fail 1
sd history 2
sd run -F "$cfg" -w 'host[1-2]' "grep -c 'demo: a new storage setting' /etc/softwareheritage/storage/storage.yml"
