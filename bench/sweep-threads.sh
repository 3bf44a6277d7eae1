#!/usr/bin/env bash
# Threads or processes? The demo sweep's mixtures (smaller test caps) evaluated by N workers with
# one thread each against one worker with N threads, alternated twice, on this machine.
# Prints items/s of each and the ratio. Needs the demo adapters (make demo trains them).
#   bash bench/sweep-threads.sh [N]      (N = cores by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/adaptermix
N=${1:-$(nproc)}
mkdir -p out/bench
CONFIG=out/bench/sweep-threads.yaml
sed -e 's/^test_cap: .*/test_cap: 100/' -e 's/^shard_size: .*/shard_size: 2/' configs/demo-sweep.yaml > "$CONFIG"
run() {  # workers threads label
  rm -f out/bench/sweep-threads.sqlite*
  local line
  line=$("$BIN" sweep --config "$CONFIG" --journal out/bench/sweep-threads.sqlite --workers "$1" --threads "$2" \
         --progress-interval 0 2>/dev/null | grep '^time:')
  echo "$line" | sed -E 's/^time: ([0-9.]+) s wall, ([0-9.]+) items\/s.*/\1 \2/'
}
declare -a procs threads
for round in 1 2; do
  read -r w1 r1 < <(run "$N" 1)
  read -r w2 r2 < <(run 1 "$N")
  echo "round $round: $N workers × 1 thread: $w1 s · 1 worker × $N threads: $w2 s (64 items each)"
  procs+=("$w1"); threads+=("$w2")
done
awk -v a="${procs[*]}" -v b="${threads[*]}" -v n="$N" 'BEGIN {
  split(a, x, " "); split(b, y, " "); sa = 0; sb = 0
  for (i in x) { sa += x[i]; sb += y[i] }
  printf "mean wall: %d workers × 1 thread %.1f s · 1 worker × %d threads %.1f s · processes are %.2f× as fast\n", n, sa/2, n, sb/2, sb/sa
}'
