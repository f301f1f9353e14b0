#!/usr/bin/env bash
# Upgrade benchmark: the same rolling upgrade of a test bed of systemd hosts
# (default 20) from python3-swh.{storage,loader.git} 1.0 to 1.1, done by
#   swh-deploy  `swh-deploy upgrade --batch 1,25%,100% --max-fail 0`
#   ansible     benches/upgrade/playbook.yml (apt, systemd, command, uri
#               modules; serial [1, 5, 14])
#   ansible-free the same playbook with `strategy: free` (ANSIBLE_STRATEGY=free:
#               each host of a batch runs its tasks without waiting for the
#               others at each task; the batch still waits for all)
#   clush       benches/upgrade/clush-upgrade.sh (the runbook's clush
#               commands, batch after batch, health loop)
# side by side in one run, interleaved (the order rotates every round), each
# from the same state (every host reset to 1.0 by one clush command, not
# timed). Every timed run is checked afterwards (not timed): 1.1 on every
# host, units active, storage answering. Prints a Markdown table: per-run
# times, medians, and each tool's median over swh-deploy's.
#
# Usage (root): benches/upgrade.sh [--runs N] [--hosts N] [--tools LIST]
#                                  [--name NAME] [--out FILE] [--keep-logs]
#                                  [--rtt MS]
#   --runs N     timed runs per tool (default 3)
#   --hosts N    test bed hosts (default 20, at least 3)
#   --tools L    comma-separated subset of swh-deploy,ansible,ansible-free,
#                clush (default swh-deploy,ansible,clush; ratios are over
#                swh-deploy when it is measured, else over clush)
#   --name NAME  test bed name (default bench-upgrade)
#   --out FILE   also write the Markdown result there
#   --keep-logs  keep the work directory (logs of every run) on success
#   --rtt MS     add MS milliseconds to every ssh round trip (the test bed's
#                latency mode: a delaying relay in front of each host's sshd,
#                MS/2 each way; default 0: loopback speed)
# Environment: SWH_DEPLOY, TESTBED (binaries; default: built here with
# `cargo build --release` into $CARGO_TARGET_DIR or <repo>/target),
# SWH_DEPLOY_VENV (venv with clush and ansible-playbook; default <repo>/.venv,
# made by scripts/install-deps), RUN_TIMEOUT (seconds per timed run, default
# 900).
#
# Bounded: every step runs under `timeout`; on exit (normal, error, Ctrl-C)
# the test bed is taken down (`testbed down` stops every process it
# started) and Ansible's ssh control masters are closed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=3
nhosts=20
tools=swh-deploy,ansible,clush
name=bench-upgrade
out=
keep_logs=0
rtt=0
run_timeout=${RUN_TIMEOUT:-900}

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "upgrade.sh: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?}; shift 2 ;;
    --hosts) nhosts=${2:?}; shift 2 ;;
    --tools) tools=${2:?}; shift 2 ;;
    --name) name=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --keep-logs) keep_logs=1; shift ;;
    --rtt) rtt=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive integer, got '$runs'"
[[ $nhosts =~ ^[1-9][0-9]*$ ]] && [ "$nhosts" -ge 3 ] || die "--hosts: expected an integer >= 3, got '$nhosts'"
[[ $rtt =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--rtt: expected milliseconds, got '$rtt'"
latency=()
[ "$(awk "BEGIN { print ($rtt > 0) }")" = 1 ] && latency=(--latency "$(awk "BEGIN { print $rtt / 2 }")ms")
[[ $name =~ ^[a-z0-9-]{1,24}$ ]] || die "--name: expected [a-z0-9-]{1,24}, got '$name'"
IFS=, read -r -a tool_list <<<"$tools"
for t in "${tool_list[@]}"; do
  case $t in swh-deploy|ansible|ansible-free|clush) ;; *) die "--tools: unknown tool '$t' (swh-deploy, ansible, ansible-free, clush)" ;; esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (the test bed needs namespaces and mounts)"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- tools -----------------------------------------------------------------
venv=${SWH_DEPLOY_VENV:-$repo/.venv}
if [ ! -x "$venv/bin/clush" ] || [ ! -x "$venv/bin/ansible-playbook" ]; then
  log "installing dependencies (scripts/install-deps)"
  "$repo/scripts/install-deps"
fi
clush_bin=$venv/bin/clush
ansible_playbook=$venv/bin/ansible-playbook
target_dir=${CARGO_TARGET_DIR:-$repo/target}
want_swh=0
for t in "${tool_list[@]}"; do [ "$t" = swh-deploy ] && want_swh=1; done
if [ -z "${TESTBED:-}" ] || { [ $want_swh -eq 1 ] && [ -z "${SWH_DEPLOY:-}" ]; }; then
  pkgs=(-p swh-deploy-testbed)
  [ $want_swh -eq 1 ] && pkgs+=(-p swh-deploy)
  log "building ${pkgs[*]} (release) into $target_dir"
  (cd "$repo" && CARGO_TARGET_DIR=$target_dir timeout 3600 cargo build --release --quiet "${pkgs[@]}")
fi
testbed=${TESTBED:-$target_dir/release/testbed}
swh_deploy=${SWH_DEPLOY:-$target_dir/release/swh-deploy}

# What is measured: the repository's commit (at the start) and the binary.
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- crates testbed 2>/dev/null | grep -q . && echo " + uncommitted changes in crates/ or testbed/" || true)
swh_id=
if [ $want_swh -eq 1 ]; then
  [ -x "$swh_deploy" ] || die "swh-deploy binary not found: $swh_deploy"
  swh_id="; swh-deploy binary built $(date -u -r "$swh_deploy" +'%H:%M UTC'), sha256 $(sha256sum "$swh_deploy" | cut -c1-12)"
fi

# --- work directory and cleanup ---------------------------------------------
work=$(mktemp -d /tmp/swh-bench-upgrade.XXXXXX)
state=/run/swh-deploy-testbed/$name
tb_up=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  close_ansible_masters || true
  if [ $tb_up -eq 1 ]; then
    log "taking the test bed down"
    timeout 120 "$testbed" --name "$name" down >/dev/null 2>&1 || log "warning: testbed down failed; run: $testbed --name $name down"
  fi
  if [ $rc -eq 0 ] && [ $keep_logs -eq 0 ]; then rm -rf "$work"; else log "logs kept in $work"; fi
  exit $rc
}
close_ansible_masters() {
  local s
  [ -d "$work/cp" ] || return 0
  for s in "$work"/cp/*/*; do
    [ -S "$s" ] || continue
    timeout 10 ssh -F /dev/null -o ControlPath="$s" -O exit dummy >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the test bed -------------------------------------------------------------
if [ -e "$state/state.toml" ]; then
  die "a test bed named '$name' is already up ($state); take it down first: $testbed --name $name down"
fi
log "starting $nhosts systemd hosts (test bed '$name')"
tb_up=1
timeout 600 "$testbed" --name "$name" up --hosts "$nhosts" --systemd "${latency[@]}" >"$work/testbed-up.log" 2>&1 || { cat "$work/testbed-up.log" >&2; die "testbed up failed"; }
timeout 60 "$testbed" --name "$name" publish 1.0-1~swh1 1.1-1~swh1 >/dev/null
cfg=$state/ssh_config
all="host[1-$nhosts]"
q=$(( (nhosts + 3) / 4 ))            # 25 %, rounded up
batch2="host[2-$((q + 1))]"
batch3="host[$((q + 2))-$nhosts]"
[ $((q + 2)) -le "$nhosts" ] || die "--hosts $nhosts is too small for batches 1, 25%, rest"
serial="[1, $q, $((nhosts - 1 - q))]"
clush_all() { timeout "${CLUSH_TIMEOUT:-600}" "$clush_bin" -S -f 64 -o "-F $cfg" -w "$all" "$@"; }

# Ansible modules need a full python3 (json, ...) and python3-apt on the
# hosts; the test bed's rootfs has python3-minimal only and no Debian mirror
# is reachable from the hosts, so the .debs are fetched here and installed on
# every host before anything is timed (real SWH hosts have them: swh is
# Python). Same state for every tool.
log "installing python3 and python3-apt on the hosts (for Ansible; not timed)"
mkdir -p "$work/debs"
(cd "$work/debs" && timeout 300 apt-get download -q python3 python3.11 python3.11-minimal \
  libpython3.11-minimal libpython3-stdlib libpython3.11-stdlib media-types libreadline8 \
  readline-common libsqlite3-0 python3-apt python-apt-common distro-info-data >"$work/debs.log" 2>&1) \
  || { cat "$work/debs.log" >&2; die "apt-get download failed"; }
for i in $(seq 1 "$nhosts"); do
  d=$state/hosts/host$i/root/var/cache/swh-bench-debs
  mkdir -p "$d" && cp "$work"/debs/*.deb "$d/"
done
clush_all -b 'dpkg -i /var/cache/swh-bench-debs/*.deb >/dev/null 2>&1 && rm -rf /var/cache/swh-bench-debs && python3 -c "import apt, json"' \
  >"$work/python3.log" 2>&1 || { tail -20 "$work/python3.log" >&2; die "installing python3 on the hosts failed"; }

# --- configuration of each tool ------------------------------------------------
{ echo "[swh]"; for i in $(seq 1 "$nhosts"); do echo "host$i"; done; } >"$work/inventory.ini"
mkdir -p "$work/ansible-tmp" "$work/cp"
cat >"$work/ansible.cfg" <<EOF
# generated by benches/upgrade.sh
[defaults]
forks = 32
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
local_tmp = $work/ansible-tmp
[ssh_connection]
# The test bed's ssh_config (strict host keys, pinned known_hosts,
# curve25519), plus Ansible's own default connection reuse.
ssh_args = -F $cfg -o ControlMaster=auto -o ControlPersist=60s
pipelining = True
EOF
cat >"$work/site.toml" <<EOF
# generated by benches/upgrade.sh
[site]
name = "bench"
default_environment = "bench"

[ssh]
config = "$cfg"
user = "root"
connect_timeout = "10s"
fanout = 64

[environments.bench]
description = "benchmark test bed '$name'"

[groups.swh]
environment = "bench"
nodes = "$all"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["swh"]
health = { check = "http", port = 5002, path = "/", expect = "Software Heritage storage server", timeout = "2s", deadline = "30s", interval = "500ms" }

[services.loader-git]
kind = "worker"
units = ["swh-worker@loader_git"]
packages = ["python3-swh.loader.git"]
groups = ["swh"]
health = { check = "systemd", deadline = "30s", interval = "500ms" }
EOF

# The timed command of each tool, for round $1.
tool_cmd() {
  local tool=$1 r=$2
  case $tool in
    swh-deploy)
      echo "$swh_deploy upgrade --site $work/site.toml --journal $work/journal-$r.sqlite -w $all --service storage --service loader-git --batch 1,25%,100% --max-fail 0" ;;
    ansible)
      echo "env ANSIBLE_CONFIG=$work/ansible.cfg ANSIBLE_SSH_CONTROL_PATH_DIR=$work/cp/$r $ansible_playbook -i $work/inventory.ini -e '{\"bench_serial\": $serial}' $repo/benches/upgrade/playbook.yml" ;;
    ansible-free)
      echo "env ANSIBLE_STRATEGY=free ANSIBLE_CONFIG=$work/ansible.cfg ANSIBLE_SSH_CONTROL_PATH_DIR=$work/cp/$r-free $ansible_playbook -i $work/inventory.ini -e '{\"bench_serial\": $serial}' $repo/benches/upgrade/playbook.yml" ;;
    clush)
      echo "env CLUSH=$clush_bin $repo/benches/upgrade/clush-upgrade.sh $cfg host1 $batch2 $batch3" ;;
  esac
}

units='gunicorn-swh-storage swh-worker@loader_git'
probe="dpkg-query -W -f='\${Version} ' python3-swh.storage python3-swh.loader.git; if systemctl is-active --quiet $units && curl -fsS --max-time 2 -H \"Host: \$(uname -n)\" http://localhost:5002/ | grep -q 'Software Heritage storage server'; then echo healthy; else echo unhealthy; fi"
# Waits (at most 60 s) until every host has version $1 of both packages and
# is healthy.
expect_state() {
  local v=$1 deadline=$((SECONDS + 60)) n
  while :; do
    n=$(clush_all -N "$probe" 2>/dev/null | grep -cx "$v $v healthy" || true)
    [ "$n" -eq "$nhosts" ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      clush_all -b "$probe" >&2 || true
      return 1
    fi
    sleep 1
  done
}
reset_hosts() {
  clush_all -b "apt-get -qq update && env DEBIAN_FRONTEND=noninteractive apt-get -qq -y --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install python3-swh.storage=1.0-1~swh1 python3-swh.loader.git=1.0-1~swh1" \
    >"$work/reset-$1.log" 2>&1 || { tail -20 "$work/reset-$1.log" >&2; die "reset to 1.0 failed"; }
  expect_state 1.0-1~swh1 || die "hosts not at 1.0 and healthy after the reset"
}

now_ns() { date +%s%N; }

# --- the runs ------------------------------------------------------------------
machine="$(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GB RAM, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
log "machine: $machine"
declare -A times
ntools=${#tool_list[@]}
for ((r = 1; r <= runs; r++)); do
  for ((k = 0; k < ntools; k++)); do
    tool=${tool_list[$(((k + r - 1) % ntools))]}
    reset_hosts "$r-$tool"
    cmd=$(tool_cmd "$tool" "$r")
    mkdir -p "$work/cp/$r" "$work/cp/$r-free"
    log "run $r/$runs: $tool"
    t0=$(now_ns)
    set +e
    timeout "$run_timeout" bash -c "$cmd" >"$work/run-$r-$tool.log" 2>&1
    rc=$?
    set -e
    t1=$(now_ns)
    close_ansible_masters
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}')
    if [ $rc -ne 0 ]; then
      tail -30 "$work/run-$r-$tool.log" >&2
      keep_logs=1
      die "$tool failed (exit $rc) in run $r after ${secs}s: $work/run-$r-$tool.log"
    fi
    expect_state 1.1-1~swh1 || { keep_logs=1; die "$tool exited 0 but the hosts are not all at 1.1 and healthy"; }
    log "run $r/$runs: $tool ${secs}s (checked: 1.1 and healthy on $nhosts hosts)"
    times[$tool]="${times[$tool]:-} $secs"
  done
done

# --- results -----------------------------------------------------------------
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{if (NR%2) printf "%.1f", a[(NR+1)/2]; else printf "%.1f", (a[NR/2]+a[NR/2+1])/2}'; }
base=clush
for t in "${tool_list[@]}"; do [ "$t" = swh-deploy ] && base=swh-deploy; done
base_median=$(median "${times[$base]}")
{
  echo "Rolling upgrade of $nhosts systemd test-bed hosts, python3-swh.storage and"
  echo "python3-swh.loader.git 1.0 -> 1.1, batches 1, $q, $((nhosts - 1 - q)), health gate per batch;"
  echo "ssh round trip: local bridge$( [ ${#latency[@]} -eq 0 ] || echo " + $rtt ms (test bed latency relay, ${latency[1]} each way)");"
  echo "$runs timed runs per tool, interleaved. $(date -u +'%Y-%m-%d %H:%M UTC'), repository at $rev$dirty$swh_id;"
  echo "$machine; ansible-core $("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)'), ClusterShell $("$venv/bin/python" -c 'import ClusterShell; print(ClusterShell.__version__)')."
  echo
  printf '| tool | runs (s) | median (s) | median / %s median |\n|---|---|---|---|\n' "$base"
  for t in "${tool_list[@]}"; do
    m=$(median "${times[$t]}")
    ratio=$(awk -v a="$m" -v b="$base_median" 'BEGIN{printf "%.2f", a/b}')
    printf '| %s | %s | %s | %s |\n' "$t" "$(sed 's/^ //; s/ /, /g' <<<"${times[$t]}")" "$m" "$ratio"
  done
  # The packages' own time, which no tool goes below: clush's `apt-get
  # update && dist-upgrade` commands alone (clush-upgrade.sh logs each),
  # summed over the batches of a run.
  floors=""
  for f in "$work"/run-*-clush.log; do
    [ -f "$f" ] || continue
    s=$(awk '/: update \+ dist-upgrade [0-9.]+ s$/ { t += $(NF-1) } END { if (NR) printf "%.1f", t }' "$f")
    [ -z "$s" ] || floors="$floors $s"
  done
  if [ -n "$floors" ]; then
    floor=$(median "$floors")
    echo
    echo "Packages' floor: clush's \`apt-get update && dist-upgrade\` commands alone, summed over the"
    echo "batches: $(sed 's/^ //; s/ /, /g' <<<"$floors") s (median $floor s; they include clush's own ssh"
    echo "connections). The best any tool could do against clush's median here: $(awk -v a="$(median "${times[clush]}")" -v b="$floor" 'BEGIN{printf "%.2f", a/b}')x."
  fi
} | tee "$work/result.md"
[ -z "$out" ] || cp "$work/result.md" "$out"
