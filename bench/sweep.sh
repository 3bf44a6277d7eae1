#!/usr/bin/env bash
# Sweep speed: `adaptermix bench sweep` (64 mixtures of 5 demo domains, 200 test examples each,
# clean) and, side by side, the same mixtures merged by plain averaging and evaluated with PyTorch
# and ONNX Runtime (bench/sweep_peer.py), with the ratios. Never run by CI: `make bench-sweep-peer`.
#   ROUNDS=2 THREADS=2 MIXTURES=64 TEST=200   ADAPTERMIX=.build/release/adaptermix
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ADAPTERMIX:-.build/release/adaptermix}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
MIXTURES=${MIXTURES:-64}
TEST=${TEST:-200}
DOMAINS=election-tweets,rotten-tomatoes,sms-spam,tweet-sentiment,bbc-news
OUT=out/bench/sweep
mkdir -p "$OUT/data"
[ -x "$BIN" ] || { echo "sweep bench: $BIN is missing: run 'make build' first" >&2; exit 1; }
for d in ${DOMAINS//,/ }; do
  if [ ! -f "out/demo/adapters/$d-pfeiffer/adapter_config.json" ]; then
    echo "== training the $d adapter (configs/train-report.yaml)"
    "$BIN" train --domain "$d" --method pfeiffer --config configs/train-report.yaml --out "out/demo/adapters/$d-pfeiffer" --quiet
  fi
  "$BIN" data export "$d" --split test --max-test "$TEST" > "$OUT/data/$d.jsonl"
done
. bench/peer-venv.sh
peer_venv
echo "== sweep speed: $MIXTURES mixtures of $DOMAINS, $TEST test examples each, clean, $THREADS threads, $ROUNDS round(s)"
echo "   $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
: > "$OUT/rounds.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
  "$BIN" bench sweep --domains "$DOMAINS" --mixtures "$MIXTURES" --test "$TEST" --threads "$THREADS" --json \
    --predictions "$OUT/mixtures.jsonl" | tail -n 1 >> "$OUT/rounds.jsonl"
  "$BIN" bench sweep --domains "$DOMAINS" --mixtures "$MIXTURES" --test "$TEST" --threads "$THREADS" --json --no-shared-prefix --full-last-layer --no-pool \
    | tail -n 1 | sed 's/"engine":"adaptermix"/"engine":"adaptermix-plain"/' >> "$OUT/rounds.jsonl"
  for e in torch ort; do
    "$VENV/bin/python" bench/sweep_peer.py --mixtures "$OUT/mixtures.jsonl" --data-dir "$OUT/data" --engine $e --threads "$THREADS" --json \
      2> "$OUT/peer-$e.log" | tail -n 1 >> "$OUT/rounds.jsonl" || { cat "$OUT/peer-$e.log" >&2; exit 1; }
  done
done
python3 - "$OUT/rounds.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in rows:
    if r["engine"] not in best or r["mixtures_per_s"] > best[r["engine"]]["mixtures_per_s"]:
        best[r["engine"]] = r
print(f"{'engine':<20} {'mixtures/s':>10} {'sequences/s':>12} {'accuracy':>9}")
for e, r in best.items():
    print(f"{e:<20} {r['mixtures_per_s']:10.2f} {r['seq_per_s']:12.0f} {r['accuracy']:9.4f}")
a = best["adaptermix"]
print(f"adaptermix time: setup {a['setup_s']:.2f} s, merge {a['merge_s']:.2f} s, encoder {a['evaluate_s']:.2f} s, other {a['other_s']:.2f} s of {a['seconds']:.2f} s")
for e in ("adaptermix-plain", "pytorch", "onnxruntime"):
    if e in best:
        print(f"adaptermix / {e}: {a['mixtures_per_s'] / best[e]['mixtures_per_s']:.2f}x")
# Per round, each engine against adaptermix of the same round (the machine's load drifts over
# minutes; engines run one after another within a round): the median of those ratios.
rounds = [rows[i:i + 4] for i in range(0, len(rows), 4)]
for e in ("pytorch", "onnxruntime"):
    ratios = sorted(next(r["mixtures_per_s"] for r in rd if r["engine"] == "adaptermix") / next(r["mixtures_per_s"] for r in rd if r["engine"] == e)
                    for rd in rounds if any(r["engine"] == e for r in rd))
    if ratios:
        print(f"adaptermix / {e} per round: " + ", ".join(f"{x:.2f}x" for x in ratios) + f" (median {(ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2:.2f}x)")
for e in ("pytorch", "onnxruntime"):
    if e in best:
        print(f"{e}: same per-example correctness as adaptermix on {100 * best[e]['same_correctness_as_adaptermix']:.2f}% of examples")
EOF
