#!/usr/bin/env bash
# Train and evaluate adapters on the packaged domains (docs/adapters.md), then print a Markdown table.
#   bash scripts/adapters.sh quality     # the quality bar: bbc-news, sms-spam, rotten-tomatoes (pfeiffer); fails below it
#   bash scripts/adapters.sh all         # all thirteen domains × pfeiffer, houlsby, lora
# Settings: CONFIG (configs/train-demo.yaml), OUT (out/adapters), THREADS (all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/adaptermix
CONFIG=${CONFIG:-configs/train-demo.yaml}
OUT=${OUT:-out/adapters}
THREADS=${THREADS:-$(nproc)}
MAX_TEST=$(grep -E '^max_test:' "$CONFIG" | awk '{print $2}')
MAX_TEST=${MAX_TEST:-1000}
mode=${1:-quality}
case "$mode" in
  quality) runs="bbc-news:pfeiffer:0.93 sms-spam:pfeiffer:0.95 rotten-tomatoes:pfeiffer:0.70" ;;
  all)     runs=""
           for d in $("$BIN" data list | tail -n +2 | awk '{print $1}'); do
             for m in pfeiffer houlsby lora; do runs="$runs $d:$m:0"; done
           done ;;
  *) echo "usage: $0 quality|all" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
table=$OUT/results-$mode.md
echo "| domain | method | test n | majority baseline | accuracy | macro-F1 | FGSM ε=0.01 accuracy | train s | examples/s |" > "$table"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" >> "$table"
fail=0
for run in $runs; do
  IFS=: read -r domain method bar <<< "$run"
  dir=$OUT/$domain-$method
  start=$(date +%s)
  "$BIN" train --domain "$domain" --method "$method" --config "$CONFIG" --out "$dir" --threads "$THREADS" --quiet >/dev/null
  secs=$(( $(date +%s) - start ))
  row=$("$BIN" eval --adapter "$dir" --domain "$domain" --max-test "$MAX_TEST" --attack fgsm --format row --threads "$THREADS")
  eps=$(grep -o '"train_examples_per_second" *: *[0-9.]*' "$dir/adapter_config.json" | grep -o '[0-9.]*$' | cut -d. -f1)
  echo "| $domain | $method $row $secs | ${eps:-?} |" | tee -a "$table"
  acc=$(echo "$row" | cut -d'|' -f4 | tr -d ' ')
  if awk -v a="$acc" -v b="$bar" 'BEGIN { exit !(a < b) }'; then echo "below the quality bar ($bar): $domain $method ($acc)" >&2; fail=1; fi
done
echo "table: $table"
exit $fail
