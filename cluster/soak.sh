#!/usr/bin/env bash
# Fault soak: the 13-domain plan (53,248 items) with the no-op evaluator and 4 workers on
# loopback, while a random worker is SIGKILLed every few seconds (and replaced) and the
# coordinator is SIGKILLed twice (and resumed on the same journal and endpoint). Checks that every
# item is recorded exactly once and that the aggregates equal an uninterrupted run's.
#   bash cluster/soak.sh                      # the full soak (about a minute on 2 cores)
# Settings (environment): BIN, CONFIG, WORKERS, DELAY_MS (per shard, so the sweep lasts long
# enough to be interrupted), KILL_EVERY (seconds), MAX_WORKER_KILLS, COORDINATOR_KILLS, OUT,
# TIMEOUT (seconds: a sweep that has not finished by then is a failure — a lost shard hangs it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/adaptermix}
CONFIG=${CONFIG:-configs/noop-13.yaml}
WORKERS=${WORKERS:-4}
DELAY_MS=${DELAY_MS:-60}
KILL_EVERY=${KILL_EVERY:-3}
MAX_WORKER_KILLS=${MAX_WORKER_KILLS:-1000000}
TIMEOUT=${TIMEOUT:-900}
COORDINATOR_KILLS=${COORDINATOR_KILLS:-2}
OUT=${OUT:-out/soak}
HB=0.25
mkdir -p "$OUT"
rm -f "$OUT"/*.sqlite* "$OUT"/*.log "$OUT"/endpoint

field() { grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }

# 1. The reference: the same plan, uninterrupted.
"$BIN" sweep --config "$CONFIG" --evaluator noop --workers 2 --journal "$OUT/reference.sqlite" \
  --progress-interval 0 --format json > "$OUT/reference.json" 2> "$OUT/reference.log"
total=$(field total < "$OUT/reference.json")

# 2. The soak.
start=$(date +%s.%N)
coordinator() {  # [--resume]
  "$BIN" coordinator --config "$CONFIG" --evaluator noop --journal "$OUT/soak.sqlite" --bind "$endpoint" \
    --heartbeat-interval "$HB" --max-attempts 100 --progress-interval 5 --format json "$@" \
    > "$OUT/soak.json" 2>> "$OUT/coordinator.log" &
  cpid=$!
}
endpoint="tcp://127.0.0.1:*"
"$BIN" coordinator --config "$CONFIG" --evaluator noop --journal "$OUT/soak.sqlite" --bind "$endpoint" \
  --heartbeat-interval "$HB" --max-attempts 100 --progress-interval 5 --format json --endpoint-file "$OUT/endpoint" \
  > "$OUT/soak.json" 2>> "$OUT/coordinator.log" &
cpid=$!
for _ in $(seq 200); do [ -s "$OUT/endpoint" ] && break; sleep 0.05; done
endpoint=$(cat "$OUT/endpoint")

declare -a wpid
worker() {  # index
  "$BIN" worker --connect "$endpoint" --threads 1 --delay-ms "$DELAY_MS" --give-up 120 --name "soak-w$1" \
    >> "$OUT/worker-$1.log" 2>&1 &
  wpid[$1]=$!
}
for i in $(seq 0 $((WORKERS - 1))); do worker "$i"; done

worker_kills=0
coordinator_kills=0
next_kill=$(( $(date +%s) + KILL_EVERY ))
deadline=$(( $(date +%s) + TIMEOUT ))
while kill -0 "$cpid" 2>/dev/null; do
  sleep 0.2
  now=$(date +%s)
  if [ "$now" -ge "$deadline" ]; then
    echo "FAIL: the sweep did not finish within $TIMEOUT s (see $OUT/coordinator.log)"
    kill -9 "$cpid" "${wpid[@]}" 2>/dev/null || true
    exit 1
  fi
  if [ "$now" -ge "$next_kill" ] && [ "$worker_kills" -lt "$MAX_WORKER_KILLS" ]; then
    i=$(( RANDOM % WORKERS ))
    if kill -0 "${wpid[$i]}" 2>/dev/null; then
      kill -9 "${wpid[$i]}" 2>/dev/null || true
      wait "${wpid[$i]}" 2>/dev/null || true
      worker_kills=$((worker_kills + 1))
      worker "$i"
    fi
    next_kill=$(( now + KILL_EVERY ))
  fi
  if [ "$coordinator_kills" -lt "$COORDINATOR_KILLS" ]; then
    done_now=$("$BIN" status --journal "$OUT/soak.sqlite" --format json 2>/dev/null | field done || echo 0)
    # Kill at 1/3 and 2/3 of the way (for two kills).
    if [ "${done_now:-0}" -ge $(( total * (coordinator_kills + 1) / (COORDINATOR_KILLS + 1) )) ]; then
      kill -9 "$cpid" 2>/dev/null || true
      wait "$cpid" 2>/dev/null || true
      coordinator_kills=$((coordinator_kills + 1))
      echo "coordinator killed at $done_now / $total recorded" >> "$OUT/coordinator.log"
      sleep 1
      coordinator --resume
    fi
  fi
done
set +e
wait "$cpid"; rc=$?
set -e
seconds=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { print a - b }')
for p in "${wpid[@]}"; do wait "$p" 2>/dev/null || true; done

# 3. Checks.
"$BIN" status --journal "$OUT/soak.sqlite" --format json > "$OUT/final.json"
done_items=$(field done < "$OUT/final.json")
results=$(field results < "$OUT/final.json")
failed=$(field failed < "$OUT/final.json")
dups=$(field duplicates_dropped < "$OUT/final.json")
agg_ref=$(grep -o '"aggregates":.*' "$OUT/reference.json" | sed -e 's/,"coordinator".*//' -e 's/,"done".*//')
agg_soak=$(grep -o '"aggregates":.*' "$OUT/final.json" | sed -e 's/,"coordinator".*//' -e 's/,"done".*//')
ok=1
[ "$rc" -eq 0 ] || { echo "FAIL: the last coordinator exited $rc (see $OUT/coordinator.log)"; ok=0; }
[ "$done_items" = "$total" ] || { echo "FAIL: $done_items of $total items done"; ok=0; }
[ "$results" = "$total" ] || { echo "FAIL: $results result rows for $total items"; ok=0; }
[ "$failed" = "0" ] || { echo "FAIL: $failed items failed"; ok=0; }
[ "$agg_ref" = "$agg_soak" ] || { echo "FAIL: the aggregates differ from the uninterrupted run's"; ok=0; }
printf "soak: %d worker kills and %d coordinator kills survived · %s items, each recorded once (%s result rows) · %s duplicate results dropped · %.1f s · aggregates %s the uninterrupted run's\n" \
  "$worker_kills" "$coordinator_kills" "$done_items" "$results" "$dups" "$seconds" "$([ "$agg_ref" = "$agg_soak" ] && echo equal || echo DIFFER from)"
[ "$ok" -eq 1 ] || exit 1
