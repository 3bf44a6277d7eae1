#!/usr/bin/env bash
# TextFooler throughput: `adaptermix eval --attack textfooler` on a fixed set of test examples,
# and with PEER=1 TextAttack's TextFooler on the same victim, examples and thresholds
# (bench/textfooler_peer.py), side by side. `make bench` runs the first part; `make
# bench-textfooler-peer` both. Never run by CI.
#
#   EXAMPLES=50   test examples of DOMAIN (the seeded test split's first N)
#   DOMAIN=rotten-tomatoes   ADAPTER=out/bench/adapters/DOMAIN-pfeiffer (trained here if missing)
#   MAX_LENGTH=64 THREADS=2 ROUNDS=3 (interleaved; best round per engine kept)
#   PEER=1        also run TextAttack (virtualenv bench/.venv-textattack, bench/requirements-textattack.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ADAPTERMIX:-.build/release/adaptermix}
DOMAIN=${DOMAIN:-rotten-tomatoes}
ADAPTER=${ADAPTER:-out/bench/adapters/$DOMAIN-pfeiffer}
EXAMPLES=${EXAMPLES:-50}
MAX_LENGTH=${MAX_LENGTH:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PEER=${PEER:-0}
OUT=out/bench/textfooler
mkdir -p "$OUT"

if [ ! -x "$BIN" ]; then echo "textfooler bench: $BIN is missing: run 'make build' first" >&2; exit 1; fi
if [ ! -f "$ADAPTER/adapter_config.json" ]; then
  echo "== training the victim: $DOMAIN, Pfeiffer, configs/train-report.yaml -> $ADAPTER"
  "$BIN" train --domain "$DOMAIN" --method pfeiffer --config configs/train-report.yaml --out "$ADAPTER" --quiet | tail -n 2
fi
"$BIN" data export "$DOMAIN" --split test --max-test "$EXAMPLES" > "$OUT/examples.jsonl"

if [ "$PEER" = 1 ]; then
  . bench/peer-venv.sh
  peer_venv
fi

echo "== TextFooler: $EXAMPLES $DOMAIN test examples, victim $ADAPTER, max_length $MAX_LENGTH, $THREADS threads, $ROUNDS round(s)"
echo "   $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
: > "$OUT/rounds.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
  "$BIN" eval --adapter "$ADAPTER" --data "$OUT/examples.jsonl" --attack textfooler --max-length "$MAX_LENGTH" \
    --threads "$THREADS" --format json --predictions "$OUT/adaptermix.jsonl" \
    | grep -E '^\{' | tail -n 1 | sed 's/^{/{"engine": "adaptermix", /' >> "$OUT/rounds.jsonl"
  if [ "$PEER" = 1 ]; then
    for mode in tuned stock; do
      flag=$([ $mode = stock ] && echo --stock-wrapper || true)
      bench/.venv-textattack/bin/python bench/textfooler_peer.py --adapter "$ADAPTER" --data "$OUT/examples.jsonl" \
        --max-length "$MAX_LENGTH" --threads "$THREADS" --json --out "$OUT/textattack-$mode.jsonl" $flag \
        2> "$OUT/textattack-$mode.log" | tail -n 1 >> "$OUT/rounds.jsonl" \
        || { cat "$OUT/textattack-$mode.log" >&2; exit 1; }
    done
  fi
done

python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/rounds.jsonl") if l.strip()]
best = {}
for r in rows:
    e = r["engine"]
    if e not in best or r["examples_per_second"] > best[e]["examples_per_second"]:
        best[e] = r
print(f"{'engine':<26} {'ex/s':>7} {'queries/s':>10} {'queries/ex':>10} {'success':>8} {'acc. under attack':>18}")
for e, r in best.items():
    acc = r.get("adversarial_accuracy", r.get("accuracy_under_attack"))
    print(f"{e:<26} {r['examples_per_second']:7.2f} {r['queries_per_second']:10.0f} {r['mean_queries']:10.1f} "
          f"{r['attack_success_rate']:8.3f} {acc:18.3f}")
a = best["adaptermix"]
if "attack_seconds" in a:
    print(f"adaptermix attack time {a['attack_seconds']:.2f} s: victim {100 * a['victim_seconds'] / a['attack_seconds']:.0f}%, "
          f"sentence similarity {100 * a['similarity_seconds'] / a['attack_seconds']:.0f}% (per-thread sums / threads)")
for e in best:
    if e != "adaptermix":
        print(f"adaptermix / {e}: {a['examples_per_second'] / best[e]['examples_per_second']:.2f}x per example")
# The same attack on both sides: per-example status, adversarial text and queries compared.
ours = [json.loads(l) for l in open(f"{out}/adaptermix.jsonl")]
for e in best:
    if e == "adaptermix":
        continue
    mode = "stock" if e.endswith("stock-wrapper") else "tuned"
    theirs = [json.loads(l) for l in open(f"{out}/textattack-{mode}.jsonl")]
    same = sum(x["attack"]["status"] == y["status"] and x["attack"]["adversarial_text"] == y["adversarial_text"] for x, y in zip(ours, theirs))
    sameq = sum(x["attack"]["queries"] == y["queries"] for x, y in zip(ours, theirs))
    print(f"{e}: same status and adversarial text on {same} of {len(ours)} examples, same query count on {sameq}")
EOF
