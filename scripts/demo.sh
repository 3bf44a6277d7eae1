#!/usr/bin/env bash
# The embedded demo: real sentences (eight messages of the packaged SMS corpus and three of our own)
# through the packaged all-MiniLM-L6-v2 on the OpenBLAS encoder. Later issues grow it into a sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/adaptermix
OUT=out/demo
mkdir -p "$OUT"
{
  head -n 8 .cache/assets/sms-spam.tsv | cut -f2
  echo "Adapters are small modules trained per domain on top of a frozen encoder."
  echo "Averaging the weights of several domain adapters can hurt in-domain accuracy."
  echo "Congratulations! You have won a free prize, text WIN to claim it now."
} > "$OUT/sentences.txt"
echo "== all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised) =="
"$BIN" embed --normalize --file "$OUT/sentences.txt" --format preview
"$BIN" embed --normalize --file "$OUT/sentences.txt" > "$OUT/embeddings.jsonl"
echo
echo "wrote $OUT/embeddings.jsonl ($(wc -l < "$OUT/embeddings.jsonl") lines of {text, input_ids, embedding})"
