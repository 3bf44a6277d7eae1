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
cores=$(nproc)
workers=2
threads=$(( cores / workers > 0 ? cores / workers : 1 ))
echo "== demo study: configs/demo.yaml · $workers workers × $threads thread(s) =="
"$BIN" sweep --config configs/demo.yaml --workers "$workers" --threads "$threads" --train-threads "$cores"
echo
echo "== report"
"$BIN" report --journal out/sweeps/demo.sqlite --out out/demo/report
echo
echo "open out/demo/report/index.html in a browser (a self-contained page: no network needed)"
echo "status at any time: $BIN status --journal out/sweeps/demo.sqlite [--format json]"
