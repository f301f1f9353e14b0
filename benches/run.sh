#!/usr/bin/env bash
# Benchmarks `swh-deploy run` against clush (ClusterShell) and the raw limit
# `xargs -P 64 ssh`, side by side in one run, on the test bed's loopback
# fleet (one real sshd answering on N 127.1.x.y addresses in a private
# network namespace; every client runs inside that namespace with the same
# ssh_config). Prints a Markdown report with ratios; see benches/RESULTS.md.
#
#   benches/run.sh                 # full run (the 10,000-host clush run alone takes minutes)
#   QUICK=1 benches/run.sh         # smaller sizes, for a smoke test
#   N1=50 N2=20 NX=500 RUNS=1 benches/run.sh   # any size; PERSIST=SECS for (2)
#   SWH_DEPLOY=path TESTBED=path benches/run.sh # given binaries, no build
#   RTT_MS=10 benches/run.sh       # every ssh round trip 10 ms longer (the test
#                                  # bed's latency relay, RTT_MS/2 each way)
#   BENCHES=2 benches/run.sh       # only some of the benchmarks (default "1 2 3")
#
# Needs root (namespaces), hyperfine, /usr/bin/time and the venv of
# scripts/install-deps (clush).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${SWH_DEPLOY_VENV:-$repo/.venv}
clush=$venv/bin/clush
[ -x "$clush" ] || { echo "run.sh: $clush missing: run scripts/install-deps" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "run.sh: hyperfine missing" >&2; exit 1; }

if [ -n "${QUICK:-}" ]; then
  N1=${N1:-100} N2=${N2:-50} NX=${NX:-1000} RUNS=${RUNS:-2}
else
  N1=${N1:-500} N2=${N2:-200} NX=${NX:-10000} RUNS=${RUNS:-3}
fi
FANOUT=64

# SWH_DEPLOY and TESTBED: binaries to use (default: a release build; benches/lib.sh).
. "$repo/benches/lib.sh"

name=bench-run-$$
work=$(mktemp -d /tmp/bench-run.XXXXXX)
cleanup() {
  [ ! -f "$work/close-masters" ] || sh "$work/close-masters"
  "$tb" --name "$name" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
RTT_MS=${RTT_MS:-0}
latency=()
[ "$(awk "BEGIN { print ($RTT_MS > 0) }")" = 1 ] && latency=(--latency "$(awk "BEGIN { print $RTT_MS / 2 }")ms")
"$tb" --name "$name" up --loopback "$N1" --no-apt-repo "${latency[@]}" >/dev/null
cfg=/run/swh-deploy-testbed/$name/ssh_config
inns() { "$tb" --name "$name" exec -- "$@"; }
seq -f 'host%g' 1 "$N1" >"$work/hosts1"
head -n "$N2" "$work/hosts1" >"$work/hosts2"

echo "## run"
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores (load average at start: $(cut -d' ' -f1-3 /proc/loadavg)),"
echo "OpenSSH $(ssh -V 2>&1 | cut -d, -f1 | cut -d_ -f2), ClusterShell $("$venv/bin/python" -c 'import ClusterShell; print(ClusterShell.__version__)'),"
echo "loopback test bed (one sshd, client in its namespace, ssh_config of the test bed: curve25519, key auth),"
echo "ssh round trip: loopback$( [ ${#latency[@]} -eq 0 ] || echo " + $RTT_MS ms (test bed latency relay, ${latency[1]} each way)")."
echo "Reproduce: \`benches/run.sh\` (as root). Ratios are other/swh-deploy: above 1 means swh-deploy is faster."
echo

# hyperfine wrapper: runs inside the namespace, prints a table row per command.
bench() { # title, then pairs NAME CMD
  local title=$1; shift
  local args=() json=$work/h.json
  while [ $# -gt 0 ]; do args+=(-n "$1" "$2"); shift 2; done
  [ -z "${PREPARE:-}" ] || args=(--prepare "$PREPARE" "${args[@]}")
  inns hyperfine --style none --runs "$RUNS" --export-json "$json" "${args[@]}" >/dev/null
  echo "### $title"
  echo
  "$venv/bin/python" - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["mean"]
print("| command | mean (s) | min (s) | ratio to %s |" % r[0]["command"])
print("|---|---|---|---|")
for x in r:
    print("| %s | %.3f | %.3f | %.2f |" % (x["command"], x["mean"], x["min"], x["mean"] / base))
EOF
  echo
}

# BENCHES: which of (1), (2), (3)+(4) to run.
want() { case " ${BENCHES:-1 2 3} " in *" $1 "*) true ;; *) false ;; esac; }

# (1) `true` on N1 hosts, fresh connections, fan-out 64.
want 1 && bench "(1) \`true\` on $N1 hosts, fresh connections, -f $FANOUT" \
  swh-deploy "$sd run -F $cfg --no-reuse -f $FANOUT -w host[1-$N1] true" \
  clush "$clush -o '-F $cfg' -f $FANOUT -w host[1-$N1] true" \
  "xargs -P $FANOUT ssh" "xargs -P $FANOUT -I{} ssh -F $cfg -oBatchMode=yes {} true < $work/hosts1"

# (2) five successive commands on N2 hosts, without and with connection
# reuse. Reuse keeps the masters up for the whole sequence (PERSIST seconds,
# far longer than five commands take) for both tools; each timed run starts
# without masters: the --prepare step, not timed, ends those of the previous
# run (ssh -O exit on every socket of both directories).
PERSIST=${PERSIST:-600}
if want 2; then
five() { printf 'for i in 1 2 3 4 5; do %s; done' "$1"; }
mkdir -m 700 "$work/xdg" "$work/mux"
cat >"$work/close-masters" <<EOF
for s in $work/xdg/swh-deploy/ssh/* $work/mux/*; do
  [ -S "\$s" ] && ssh -oControlPath="\$s" -O exit x >/dev/null 2>&1
done
true
EOF
# clush reads -o through ConfigParser: % is written %%.
mux="-oControlMaster=auto -oControlPath=$work/mux/%%C -oControlPersist=$PERSIST"
PREPARE="sh $work/close-masters" bench "(2) five successive commands on $N2 hosts" \
  "swh-deploy, fresh" "$(five "$sd run -F $cfg --no-reuse -w host[1-$N2] true")" \
  "clush, fresh" "$(five "$clush -o '-F $cfg' -w host[1-$N2] true")" \
  "swh-deploy, reuse" "$(five "XDG_RUNTIME_DIR=$work/xdg $sd run -F $cfg --control-persist $PERSIST -w host[1-$N2] true")" \
  "clush, reuse" "$(five "$clush -o '-F $cfg $mux' -w host[1-$N2] true")"
echo "(2) reuse: ControlPersist=$PERSIST for both tools (masters up for the whole sequence); each timed run starts without masters."
echo

# (2c) where the time of (2) goes: one command of each kind, its wall time
# and the CPU it cost on the admin host (the tool, its ssh clients and
# masters) and on the hosts (sshd), which the test bed puts on the same
# cores while a real fleet spreads the hosts' part over N2 machines.
split() { inns "$venv/bin/python" "$repo/benches/cpu_split.py" sh -c "$1"; }
sdr="XDG_RUNTIME_DIR=$work/xdg $sd run -F $cfg --control-persist $PERSIST -w host[1-$N2] true"
clr="$clush -o '-F $cfg $mux' -w host[1-$N2] true"
: >"$work/split"
for _ in $(seq "$RUNS"); do
  sh "$work/close-masters"
  echo "clush, fresh $(split "$clush -o '-F $cfg' -w host[1-$N2] true")" >>"$work/split"
  echo "swh-deploy, fresh $(split "$sd run -F $cfg --no-reuse -w host[1-$N2] true")" >>"$work/split"
  echo "swh-deploy, making the masters $(split "$sdr")" >>"$work/split"
  echo "swh-deploy, over its masters $(split "$sdr")" >>"$work/split"
  echo "clush, making the masters $(split "$clr")" >>"$work/split"
  echo "clush, over its masters $(split "$clr")" >>"$work/split"
done
sh "$work/close-masters"
echo "### (2c) one command on $N2 hosts: wall time and CPU, admin host and hosts (medians of $RUNS)"
echo
"$venv/bin/python" - "$work/split" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, _, js = line.partition(" {")
    rows.setdefault(name, []).append(json.loads("{" + js))
med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "admin_cpu_s", "hosts_cpu_s", "relay_cpu_s")}
       for n, rs in rows.items()}
print("| command | wall (s) | admin host CPU (s) | hosts' sshd CPU (s) | latency relay CPU (s) |")
print("|---|---:|---:|---:|---:|")
for n, m in med.items():
    print("| %s | %.2f | %.2f | %.2f | %.2f |" % (n, m["wall_s"], m["admin_cpu_s"], m["hosts_cpu_s"], m["relay_cpu_s"]))
five_c = {k: 5 * med["clush, fresh"][k] for k in ("wall_s", "admin_cpu_s", "hosts_cpu_s")}
five_s = {k: med["swh-deploy, making the masters"][k] + 4 * med["swh-deploy, over its masters"][k]
          for k in ("wall_s", "admin_cpu_s", "hosts_cpu_s")}
print()
print("Five commands from these medians (clush fresh x 5 against swh-deploy making the masters + 4 x over them):")
print("wall %.2f s / %.2f s = **%.2fx**; admin host CPU %.2f s / %.2f s = **%.2fx**; hosts' CPU %.2f s / %.2f s = %.2fx."
      % (five_c["wall_s"], five_s["wall_s"], five_c["wall_s"] / five_s["wall_s"],
         five_c["admin_cpu_s"], five_s["admin_cpu_s"], five_c["admin_cpu_s"] / five_s["admin_cpu_s"],
         five_c["hosts_cpu_s"], five_s["hosts_cpu_s"], five_c["hosts_cpu_s"] / five_s["hosts_cpu_s"]))
EOF
echo
fi
want 3 || exit 0

# (3) + (4) gathering 100 lines from NX hosts with the exec worker; peak RSS.
echo "### (3) gathering: $NX hosts x 100 lines, exec worker, -b; (4) peak memory"
echo
echo "| command | time (s) | peak RSS (MiB) | identical output |"
echo "|---|---|---|---|"
measure() { # name outfile cmd...
  local name=$1 out=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$out" 2>/dev/null
  read -r secs kb <"$work/time"
  echo "$name $secs $kb"
}
read -r _ s1 m1 < <(measure sd "$work/sd.out" "$sd" run -R exec -b -w "node[1-$NX]" 'seq 100')
read -r _ s2 m2 < <(measure clush "$work/clush.out" "$clush" -R exec -b -w "node[1-$NX]" 'seq 100')
# The raw limit: the same 10,000 processes started by xargs, output thrown
# away (no gathering at all). No tool can run the workload faster.
read -r _ s0 _ < <(measure raw /dev/null sh -c "seq $NX | xargs -P $FANOUT -I{} seq 100")
same=no; cmp -s "$work/sd.out" "$work/clush.out" && same=yes
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }
printf '| swh-deploy run -R exec -b | %s | %s | %s |\n' "$s1" "$(calc "$m1/1024")" "$same"
printf '| clush -R exec -b | %s | %s | |\n' "$s2" "$(calc "$m2/1024")"
printf '| raw limit: xargs -P %s seq 100, output discarded | %s | | |\n' "$FANOUT" "$s0"
echo
echo "clush/swh-deploy: time ratio $(calc "$s2/$s1")x, peak memory ratio $(calc "$m2/$m1")x;"
echo "swh-deploy/raw limit: $(calc "$s1/$s0")x (the best ratio any tool could reach against clush here: $(calc "$s2/$s0")x)."
echo
# Peak memory with ssh on the whole loopback fleet too.
read -r _ s3 m3 < <(measure sd "$work/sd-ssh.out" "$tb" --name "$name" exec -- "$sd" run -F "$cfg" --no-reuse -b -w "host[1-$N1]" 'seq 100')
read -r _ s4 m4 < <(measure clush "$work/clush-ssh.out" "$tb" --name "$name" exec -- "$clush" -o "-F $cfg" -b -w "host[1-$N1]" 'seq 100')
same=no; cmp -s "$work/sd-ssh.out" "$work/clush-ssh.out" && same=yes
echo "ssh, $N1 hosts x 100 lines, -b: swh-deploy ${s3} s / $((m3 / 1024)) MiB peak, clush ${s4} s / $((m4 / 1024)) MiB peak (identical output: $same)."
