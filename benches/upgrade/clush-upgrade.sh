#!/usr/bin/env bash
# The runbook's clush commands for the upgrade benchmark (benches/upgrade.sh),
# run batch after batch:
#
#   clush -b -S -w NODES 'apt-get update && env DEBIAN_FRONTEND=noninteractive
#       apt-get -o Dpkg::Options::=--force-confdef
#       -o Dpkg::Options::=--force-confold -y dist-upgrade'
#   clush -b -S -w NODES 'systemctl restart UNITS'
#   until clush -b -S -w NODES 'systemctl is-active --quiet UNITS &&
#       curl -fsS -H "Host: $(uname -n)" http://localhost:5002/ |
#       grep -q "Software Heritage storage server"'
#   do sleep 0.5; done            # at most 30 s, then the rollout stops
#
# Usage: clush-upgrade.sh SSH_CONFIG NODES [NODES...]   (one NODES per batch)
# Environment: CLUSH (default: clush), FANOUT (default 64),
# HEALTH_DEADLINE (seconds, default 30), HEALTH_INTERVAL (default 0.5).
# Exit status: 0 all batches upgraded and healthy; 1 a command failed on a
# host, or a batch was not healthy in time (later batches are not started).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 SSH_CONFIG NODES [NODES...]" >&2
  exit 2
fi
cfg=$1
shift
clush_bin=${CLUSH:-clush}
fanout=${FANOUT:-64}
deadline_s=${HEALTH_DEADLINE:-30}
interval=${HEALTH_INTERVAL:-0.5}
units='gunicorn-swh-storage swh-worker@loader_git'

run() { "$clush_bin" -b -S -f "$fanout" -o "-F $cfg" "$@"; }

for nodes in "$@"; do
  echo "== batch $nodes"
  t0=$(date +%s.%N)
  run -w "$nodes" 'apt-get update && env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y dist-upgrade'
  # How long the packages took (the floor no tool goes below), for
  # benches/RESULTS.md's reading: kept in the run's log.
  echo "== batch $nodes: update + dist-upgrade $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $t0 }") s"
  run -w "$nodes" "systemctl restart $units"
  deadline=$((SECONDS + deadline_s))
  until run -w "$nodes" "systemctl is-active --quiet $units && curl -fsS --max-time 2 -H \"Host: \$(uname -n)\" http://localhost:5002/ | grep -q 'Software Heritage storage server'"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "clush-upgrade: batch $nodes not healthy after ${deadline_s}s: rollout stopped" >&2
      exit 1
    fi
    sleep "$interval"
  done
done
echo "== all batches upgraded and healthy"
