#!/usr/bin/env bash
# Measures swh-deploy's own cost per host for `swh-deploy run` at growing
# fleet sizes (issue 16 part 4): CPU (user+sys, its own and with its child
# processes), peak RSS, file descriptors and threads open at peak, with the
# exec worker (no ssh: one local `sh -c` per host) and with ssh against the
# test bed's loopback fleet (one real sshd answering on N 127.1.x.y
# addresses in a private network namespace), fresh connections and with
# connection reuse (a ControlMaster per host). Prints a Markdown report; see
# benches/RESULTS.md ("scale").
#
#   benches/scale.sh                         # exec 1 / 1,000 / 10,000 hosts, ssh 1 / 1,000
#   EXEC_SIZES="1 1000" SSH_SIZES="1 200" benches/scale.sh   # smaller
#   SSH_SIZES="1 1000 10000" benches/scale.sh  # ssh at 10,000 too (long: minutes)
#   REUSE_MAX=1000 (default): above this many hosts, only fresh connections
#   are measured (10,000 masters: ~13 GiB PSS, 36 GiB RSS, on a 24 GiB machine)
#   SWH_DEPLOY=path TESTBED=path benches/scale.sh  # given binaries, no build
#
# Bounded: every measured command is killed after LIMIT seconds (default
# 900); the test bed and every ssh master it opened are stopped on exit.
# /proc/PID is sampled every 20 ms (fds, threads, own CPU, VmHWM) by the
# shell, so the figures are lower bounds of the peaks between samples.
# Needs root (namespaces) and /usr/bin/time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
EXEC_SIZES=${EXEC_SIZES:-"1 1000 10000"}
SSH_SIZES=${SSH_SIZES:-"1 1000"}
FANOUT=${FANOUT:-64}
REUSE_MAX=${REUSE_MAX:-1000}
LIMIT=${LIMIT:-900}
[ -x /usr/bin/time ] || { echo "scale.sh: /usr/bin/time missing (apt install time)" >&2; exit 1; }

. "$repo/benches/lib.sh"

name=bench-scale-$$
work=$(mktemp -d /tmp/bench-scale.XXXXXX)
mkdir -m 700 "$work/xdg"
up=
close_masters() {
  for s in "$work"/xdg/swh-deploy/ssh/*; do
    [ -S "$s" ] && ssh -oControlPath="$s" -O exit x >/dev/null 2>&1 || true
  done
}
cleanup() {
  close_masters
  [ -z "$up" ] || "$tb" --name "$name" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

tick=$(getconf CLK_TCK)
# The swh-deploy process among the descendants of $1 (empty until started).
find_sd() {
  local p=$1 c
  for _ in 1 2 3 4; do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = swh-deploy ] && { echo "$p"; return; }
    c=$(cat /proc/"$p"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || true)
    [ -n "$c" ] || return 0
    p=$c
  done
}
# measure LABEL HOSTS CMD...: one Markdown row.
measure() {
  local label=$1 n=$2; shift 2
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v -o "$work/tv" timeout "$LIMIT" "$@" >"$work/out" 2>"$work/err" &
  local tpid=$! pid= fd=0 th=0 cpu=0 hwm=0 f x
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(find_sd "$tpid")
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
      f=(/proc/"$pid"/fd/*)
      [ "${#f[@]}" -le "$fd" ] || fd=${#f[@]}
      x=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${x:-0}" -le "$th" ] || th=$x
      x=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${x:-0}" -le "$hwm" ] || hwm=$x
      # utime + stime (fields 14, 15; comm has no space).
      x=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
      [ "${x:-0}" -le "$cpu" ] || cpu=$x
    fi
    sleep 0.02
  done
  local rc=0; wait "$tpid" || rc=$?
  local user sys wall
  user=$(awk -F': ' '/User time/ {print $2}' "$work/tv")
  sys=$(awk -F': ' '/System time/ {print $2}' "$work/tv")
  wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$work/tv")
  local own; own=$(awk "BEGIN { printf \"%.2f\", $cpu / $tick }")
  awk -v l="$label" -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v o="$own" \
      -v h="$hwm" -v fd="$fd" -v th="$th" -v ld="$load" -v rc="$rc" 'BEGIN {
    printf "| %s | %d | %s | %.2f | %s | %.2f | %.1f | %d | %d | %s | %s |\n",
      l, n, w, u + s, o, 1000 * o / n, h / 1024, fd, th, ld, rc }'
}

echo "## scale: swh-deploy's own cost per host"
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, OpenSSH $(ssh -V 2>&1 | cut -d, -f1 | cut -d_ -f2),"
echo "\`ulimit -n\` $(ulimit -n), fan-out $FANOUT, binary: $sd. Reproduce: \`benches/scale.sh\` (as root)."
echo "Columns: wall clock; CPU user+sys of swh-deploy *and* its children (time -v); swh-deploy's own CPU"
echo "(/proc/PID/stat, last sample) and per host; its own peak RSS (VmHWM); peak fds and threads"
echo "(/proc/PID/fd, sampled every 20 ms); the 1-minute load average at start; exit status."
echo
echo "| run | hosts | wall | CPU with children (s) | own CPU (s) | own CPU per host (ms) | peak RSS (MiB) | peak fds | peak threads | load | exit |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for n in $EXEC_SIZES; do
  measure "exec worker, \`echo ok\`, -b" "$n" "$sd" run -R exec -f "$FANOUT" -b -w "node[1-$n]" 'echo ok'
done
max=1
for n in $SSH_SIZES; do [ "$n" -le "$max" ] || max=$n; done
if [ -n "$SSH_SIZES" ]; then
  "$tb" --name "$name" up --loopback "$max" --no-apt-repo >/dev/null
  up=1
  cfg=/run/swh-deploy-testbed/$name/ssh_config
  for n in $SSH_SIZES; do
    measure "ssh, fresh (--no-reuse), \`echo ok\`, -b" "$n" "$tb" --name "$name" exec -- \
      "$sd" run -F "$cfg" --no-reuse -f "$FANOUT" -b -w "host[1-$n]" 'echo ok'
    if [ "$n" -gt "$REUSE_MAX" ]; then
      echo "| (reuse not measured at $n hosts, above REUSE_MAX=$REUSE_MAX: one ssh master per host; see the masters' memory at the smaller sizes) | | | | | | | | | | |"
      continue
    fi
    measure "ssh, reuse: opening the masters" "$n" "$tb" --name "$name" exec -- \
      env XDG_RUNTIME_DIR="$work/xdg" "$sd" run -F "$cfg" --control-persist 600 -f "$FANOUT" -b -w "host[1-$n]" 'echo ok'
    # The masters left for later commands: how many, their memory.
    masters=0 kb=0 pss=0
    for p in $(pgrep -x ssh || true); do
      grep -qF "$work/xdg" "/proc/$p/cmdline" 2>/dev/null || continue
      masters=$((masters + 1))
      kb=$((kb + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
      pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
    done
    measure "ssh, reuse: over the $masters open masters" "$n" "$tb" --name "$name" exec -- \
      env XDG_RUNTIME_DIR="$work/xdg" "$sd" run -F "$cfg" --control-persist 600 -f "$FANOUT" -b -w "host[1-$n]" 'echo ok'
    echo "| (ssh masters left open after the $n-host run: $masters processes, $((kb / 1024)) MiB RSS, $((pss / 1024)) MiB PSS in all) | | | | | | | | | | |"
    close_masters
  done
fi
echo
