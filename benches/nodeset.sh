#!/usr/bin/env bash
# Benchmark: `swh-deploy nodeset` against ClusterShell's `nodeset`, whole
# process, same inputs, side by side in one run (hyperfine for time,
# /usr/bin/time -v for peak memory). Prints a Markdown table with ratios.
#
# Usage: benches/nodeset.sh [RUNS]     (default 3 runs per command; the
#        slow ClusterShell runs of the scattered 4-D fold use 1 run)
# Env:   SWH_DEPLOY_VENV (default <repo>/.venv), CARGO_TARGET_DIR,
#        NODESET_BENCH_DIR (inputs and raw results, default a temp dir),
#        NODESET_BENCH_ONLY (run only the workloads whose name contains it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
venv=${SWH_DEPLOY_VENV:-$repo/.venv}
cs=$venv/bin/nodeset
py=$venv/bin/python
[ -x "$cs" ] || { echo "ClusterShell not found at $cs (run scripts/install-deps)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing (scripts/install-deps)" >&2; exit 1; }

(cd "$repo" && cargo build --release -q -p swh-deploy)
ours="${CARGO_TARGET_DIR:-$repo/target}/release/swh-deploy"
work=${NODESET_BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"

# Inputs (seeded, reproducible).
"$py" - "$work" <<'EOF'
import random, sys
w = sys.argv[1]
r = random.Random(42)
# 1. 1,000,000 one-dimension names with gaps (every 10th index missing,
#    plus random holes), shuffled, one per line.
idx = [i for i in range(1, 1_150_000) if i % 10 != 7 and r.random() > 0.02][:1_000_000]
r.shuffle(idx)
with open(f"{w}/fold1d.txt", "w") as f:
    f.write("\n".join(f"node{i}" for i in idx) + "\n")
# 3. 100,000 scattered four-dimension names: a random 100,000 of the
#    102,400 names of x[1-800]c[0-7]s[0-7]b[0-1], shuffled.
pts = [(x, c, s, b) for x in range(1, 801) for c in range(8) for s in range(8) for b in range(2)]
r.shuffle(pts)
with open(f"{w}/scattered4d.txt", "w") as f:
    f.write("\n".join("x%dc%ds%db%d" % p for p in pts[:100_000]) + "\n")
# 4. a 100,000-name comma list on one line (random indexes, three prefixes).
names = [f"{r.choice(['node', 'web', 'db'])}{r.randint(1, 1_000_000)}" for _ in range(100_000)]
with open(f"{w}/commalist.txt", "w") as f:
    f.write(",".join(names) + "\n")
EOF
"$cs" -e -S '\n' 'x[2000-2073]c[0-7]s[0-7]b[0-1]' >"$work/expanded4d.txt"

# name | arguments | stdin file ("" = none) | ClusterShell runs
workloads=(
  "fold 1,000,000 1-D names with gaps|-f|fold1d.txt|$runs"
  "expand x[2000-2073]c[0-7]s[0-7]b[0-1]|-e x[2000-2073]c[0-7]s[0-7]b[0-1]||$runs"
  "fold the 9,472 expanded names back|-f|expanded4d.txt|$runs"
  "fold 100,000 scattered 4-D names|-f|scattered4d.txt|1"
  "parse a 100,000-name comma list|-f|commalist.txt|$runs"
)

peak_kb() { # command... ; prints max RSS in kB
  /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/{print $2}'
}

echo "| workload | ClusterShell $("$py" -c 'import ClusterShell; print(ClusterShell.__version__)') | swh-deploy nodeset | time ratio | ClusterShell peak RSS | swh-deploy peak RSS |"
echo "|---|---:|---:|---:|---:|---:|"
i=0
for w in "${workloads[@]}"; do
  IFS='|' read -r name args input csruns <<<"$w"
  i=$((i + 1))
  case "$name" in *"${NODESET_BENCH_ONLY:-}"*) ;; *) continue ;; esac
  # Workloads without standard input run without a shell in between
  # (hyperfine --shell=none), so that a 2 ms process is not measured
  # through a shell's start-up noise.
  if [ -n "$input" ]; then
    redirect="< $work/$input"
    shell=()
  else
    redirect=""
    shell=(--shell=none)
  fi
  # Same output first (the comparison is only fair if both agree).
  if ! cmp -s <(eval "$cs $(printf '%q ' $args) $redirect") <(eval "$ours nodeset $(printf '%q ' $args) $redirect"); then
    echo "outputs differ for: $name" >&2
    exit 1
  fi
  hyperfine "${shell[@]}" --style none --runs "$csruns" --export-json "$work/cs$i.json" \
    "$cs $(printf '%q ' $args) $redirect" >/dev/null
  hyperfine "${shell[@]}" --style none --warmup 1 --runs $((runs * 3)) --export-json "$work/ours$i.json" \
    "$ours nodeset $(printf '%q ' $args) $redirect" >/dev/null
  cs_rss=$(eval "peak_kb $cs $(printf '%q ' $args) $redirect")
  our_rss=$(eval "peak_kb $ours nodeset $(printf '%q ' $args) $redirect")
  "$py" - "$work/cs$i.json" "$work/ours$i.json" "$name" "$cs_rss" "$our_rss" <<'EOF'
import json, sys
cs = json.load(open(sys.argv[1]))["results"][0]["mean"]
us = json.load(open(sys.argv[2]))["results"][0]["mean"]
def t(s):
    return f"{s*1000:.1f} ms" if s < 1 else f"{s:.2f} s"
print(f"| {sys.argv[3]} | {t(cs)} | {t(us)} | {cs/us:.0f}x | {int(sys.argv[4])/1024:.0f} MiB | {int(sys.argv[5])/1024:.1f} MiB |")
EOF
done
echo
echo "Machine: $(nproc) cores, $(uname -sr); inputs and raw hyperfine JSON in $work"
