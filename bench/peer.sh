#!/usr/bin/env bash
# Peer benchmark: `adaptermix bench encoder` against ONNX Runtime and PyTorch on the same work
# (bench/README.md). Never run by CI. Usage: bash bench/peer.sh   (or: make bench-peer)
#
#   ROUNDS=3       interleaved rounds (adaptermix, ort, torch each round); best round kept
#   SECONDS_EACH=2 seconds each measurement repeats for, after its warm-up (all engines)
#   ADAPTERMIX=.build/release/adaptermix   the binary to measure
#   PYTHON=python3 the interpreter that creates bench/.venv
#
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left exactly as the environment has them, for every
# engine; the header prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-2}
ADAPTERMIX=${ADAPTERMIX:-.build/release/adaptermix}
PYTHON=${PYTHON:-python3}
VENV=bench/.venv
REQS=bench/requirements.txt
OUTDIR=.cache/bench

if [ ! -x "$ADAPTERMIX" ]; then
  echo "peer: $ADAPTERMIX is missing: run 'make build' first" >&2
  exit 1
fi
if [ ! -f .cache/assets/all-MiniLM-L6-v2/model.safetensors ] || [ ! -f .cache/assets/sms-spam.tsv ]; then
  bash scripts/setup.sh
fi

# --- virtualenv with pinned peers (re-installed when bench/requirements.txt changes) ----------
stamp=$VENV/.requirements.sha256
want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "peer: installing the peers into $VENV (pinned in $REQS) ..."
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  echo "$want" > "$stamp"
fi
PY=$VENV/bin/python

mkdir -p "$OUTDIR"
stamp_time=$(date +%Y%m%d-%H%M%S)
JSONL=$OUTDIR/encoder-$stamp_time.jsonl
: > "$JSONL"

# CPU used by anything but this script's own children while an engine runs, as a share of the
# machine: /proc/stat busy jiffies (steal included) minus what our waited-for children used.
machine_jiffies() { awk '/^cpu /{b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat; }
own_jiffies() { sed 's/.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }  # cutime + cstime
worst_others=0

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
echo "== AdapterMix encoder vs peers — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "   machine: ${cpu:-unknown CPU}, $(nproc) cores; all engines 2 threads"
echo "   OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>}  OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>}  (left as they are)"
echo "   peers: $("$PY" -c 'import onnxruntime, torch, transformers, tokenizers; print(f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")')"
echo "   adaptermix: $ADAPTERMIX ($(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ', with local changes'))"
read -r b0 t0 < <(machine_jiffies); sleep 3; read -r b1 t1 < <(machine_jiffies)
busy=$(( t1 > t0 ? 100 * (b1 - b0) / (t1 - t0) : 0 ))
echo "   CPUs busy in the 3 s before the start: $busy%"
if [ "$busy" -gt 5 ]; then
  echo "   WARNING: the machine is busy: figures will be low and uneven; rerun when it is idle"
fi
echo "   $ROUNDS rounds interleaved, ${SECONDS_EACH} s per measurement; raw JSON: $JSONL"

# The last line of stdout that is a JSON object (anything else a command prints is ignored).
json_line() { grep -E '^\{' | tail -n 1; }

run_engine() {  # $1 = adaptermix | adaptermix-padded | ort | torch
  local out busy0 total0 own0 busy1 total1 own1 others
  read -r busy0 total0 < <(machine_jiffies); own0=$(own_jiffies)
  case $1 in
    adaptermix) out=$("$ADAPTERMIX" bench encoder --json --threads 2 --seconds "$SECONDS_EACH" | json_line) \
                  || { echo "peer: '$ADAPTERMIX bench encoder --json' failed" >&2; return 1; } ;;
    adaptermix-padded) out=$("$ADAPTERMIX" bench encoder --json --padded --threads 2 --seconds "$SECONDS_EACH" | json_line) \
                  || { echo "peer: '$ADAPTERMIX bench encoder --json --padded' failed" >&2; return 1; } ;;
    ort|torch)  out=$("$PY" bench/peer.py --engine "$1" --json --threads 2 --seconds "$SECONDS_EACH" 2>"$OUTDIR/peer-$1.log" | json_line) \
                  || { cat "$OUTDIR/peer-$1.log" >&2; return 1; } ;;
  esac
  read -r busy1 total1 < <(machine_jiffies); own1=$(own_jiffies)
  others=$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v t=$((total1 - total0)) \
    'BEGIN { x = t > 0 ? 100 * (b - o) / t : 0; printf "%.0f", x < 0 ? 0 : x }')
  [ "$others" -gt "$worst_others" ] && worst_others=$others
  if [ -z "$out" ]; then echo "peer: $1 printed no JSON object" >&2; return 1; fi
  echo "$out" >> "$JSONL"
  echo "$out" | "$PY" -c 'import json, sys
j = json.load(sys.stdin); a, b = j["fixed"]["seq_per_s"], j["corpus"]["seq_per_s"]
e = j["engine"] + ("-padded" if j.get("layout") == "padded" else "")
print(f"   round {sys.argv[1]}  {e:<12} (a) {a:7.1f} seq/s   (b) {b:7.1f} seq/s   other processes: {sys.argv[2]}% of the CPUs")' "$r" "$others"
}

for ((r = 1; r <= ROUNDS; r++)); do
  for e in adaptermix adaptermix-padded ort torch; do run_engine "$e"; done
done

"$PY" - "$JSONL" <<'EOF'
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:  # adaptermix's padded layout (what the peers compute) is its own row
    if r.get("layout") == "padded":
        r["engine"] += "-padded"
# Best round per engine, per workload (highest seq/s); the sgemm rate comes with adaptermix's best (a).
best = {}
for e in ("adaptermix", "adaptermix-padded", "onnxruntime", "pytorch"):
    mine = [r for r in rows if r["engine"] == e]
    fx = max(mine, key=lambda r: r["fixed"]["seq_per_s"])
    co = max(mine, key=lambda r: r["corpus"]["seq_per_s"])
    best[e] = {"fixed": fx["fixed"], "corpus": co["corpus"], "sgemm": fx.get("sgemm_gflops"),
               "threads": fx["threads"], "rounds": len(mine)}

t = best["adaptermix"]["corpus"]
print()
print(f"Best of {best['adaptermix']['rounds']} rounds, 2 threads. (a) 32 x 128 fixed tokens; "
      f"(b) 512 SMS, {t['tokens']} real tokens (mean {t['mean_tokens']:.1f}), batches of 32, length-sorted; "
      f"adaptermix packs real tokens (no padding rows), adaptermix-padded and the peers pad each batch.")
hdr = f"{'engine':<12} | {'(a) seq/s':>9} {'tok/s':>8} {'GFLOP/s':>8} | {'(b) seq/s':>9} {'tok/s':>8} {'GFLOP/s':>8}"
print(hdr)
print("-" * len(hdr))
for e, b in best.items():
    a, c = b["fixed"], b["corpus"]
    print(f"{e:<12} | {a['seq_per_s']:9.1f} {a['tok_per_s']:8.0f} {a['gflops']:8.1f} | "
          f"{c['seq_per_s']:9.1f} {c['tok_per_s']:8.0f} {c['gflops']:8.1f}")
for e, b in best.items():
    if b["threads"] != 2:
        print(f"warning: {e} reported {b['threads']} threads, not 2")
print()
for mine in ("adaptermix", "adaptermix-padded"):
  am = best[mine]
  for e, label in (("onnxruntime", "ORT"), ("pytorch", "PyTorch")):
    p = best[e]
    print(f"{mine} / {label:<8}: (a) {am['fixed']['seq_per_s'] / p['fixed']['seq_per_s']:.2f}x"
          f"   (b) {am['corpus']['seq_per_s'] / p['corpus']['seq_per_s']:.2f}x")
am = best["adaptermix"]
if am["sgemm"]:
    print(f"adaptermix (a) at {100 * am['fixed']['gflops'] / am['sgemm']:.0f}% of its measured sgemm rate "
          f"({am['sgemm']:.1f} GFLOP/s on the model's GEMM shapes)")
else:
    print("adaptermix reported no sgemm_gflops")
EOF
if [ "$worst_others" -gt 5 ]; then
  echo "WARNING: other processes took up to ${worst_others}% of the CPUs during a run: these figures are not from a quiet machine"
fi
