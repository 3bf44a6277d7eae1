#!/usr/bin/env bash
# The embedded demo: a real, small sweep end to end on this machine (docs/sweep.md).
#  1. trains the four demo domains' Pfeiffer adapters on the packaged all-MiniLM-L6-v2 if they are
#     missing (configs/train-report.yaml, about half a minute each on 2 cores);
#  2. runs every mixture that contains each target (4 · 2^3 = 32) clean and under FGSM, through a
#     coordinator and two worker processes talking ZeroMQ on 127.0.0.1, journaled in SQLite;
#  3. prints, per target, mean ± std of accuracy per mixture size, and where the time went.
# Run it again and it resumes from the journal (out/sweeps/demo-sweep.sqlite): nothing is redone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/adaptermix
cores=$(nproc)
workers=2
threads=$(( cores / workers > 0 ? cores / workers : 1 ))
echo "== demo sweep: configs/demo-sweep.yaml · $workers workers × $threads thread(s) =="
"$BIN" sweep --config configs/demo-sweep.yaml --workers "$workers" --threads "$threads" --train-threads "$cores"
echo
echo "status at any time: $BIN status --journal out/sweeps/demo-sweep.sqlite [--format json]"
