#!/usr/bin/env bash
# The embedded demo: a real, small study end to end on this machine (docs/guide.md).
#  1. trains the four demo domains' Pfeiffer adapters on the packaged all-MiniLM-L6-v2 if they are
#     missing (configs/train-report.yaml, about half a minute each on 2 cores);
#  2. runs configs/demo.yaml — every mixture that contains each target (4 · 2^3 = 32) clean, under
#     FGSM and under TextFooler, and the study's other experiments (greedy FSD mixing, pruning,
#     sparse mixing, TIES, DARE) — through a coordinator and two worker processes talking ZeroMQ
#     on 127.0.0.1, journaled in SQLite;
#  3. writes the report (out/demo/report/index.html and its CSV files) and prints its path.
# Run it again and it resumes from the journal (out/sweeps/demo.sqlite): nothing is redone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/adaptermix
# 1. The four demo adapters (skipped when present; configs/demo.yaml's adapters.train would also do it).
for d in election-tweets rotten-tomatoes sms-spam tweet-sentiment; do
  if [ ! -f "out/demo/adapters/$d-pfeiffer/adapter_config.json" ]; then
    echo "== training the $d adapter (configs/train-report.yaml)"
    "$BIN" train --domain "$d" --method pfeiffer --config configs/train-report.yaml --out "out/demo/adapters/$d-pfeiffer" --quiet
  fi
done
# 2. The study: a coordinator and two worker processes (threads: cores ÷ workers each).
echo "== demo study: configs/demo.yaml · 2 workers"
"$BIN" sweep --config configs/demo.yaml --workers 2
echo
# 3. The report, and where things stand.
echo "== report"
"$BIN" report --journal out/sweeps/demo.sqlite --out out/demo/report
"$BIN" status --journal out/sweeps/demo.sqlite | head -n 3
echo
echo "open out/demo/report/index.html in a browser (a self-contained page: no network needed)"
