#!/usr/bin/env python3
"""Peer benchmark: the AdapterMix encoder workloads on ONNX Runtime or PyTorch.

    python bench/peer.py --engine ort|torch [--json]

Runs exactly the workloads of `adaptermix bench encoder --json` (see bench/README.md) and
prints one JSON object of the same shape on stdout with --json; progress and versions go
to stderr. Never run by CI; bench/peer.sh sets up its virtualenv and compares the engines.

Workloads (both sides do exactly the same work):
  model   all-MiniLM-L6-v2 (BERT: 6 layers, hidden 384, 12 heads, FFN 1536), fp32,
          output = last hidden state + masked mean pooling (pooling is inside the timing).
  fixed   32 x 128 tokens, attention mask all ones, token types 0. Ids: the corpus texts
          below, in order, joined with " ", tokenized without special tokens and without
          truncation; the first 32*126 ids split into 32 rows of 126, each wrapped as
          [CLS]=101 ... [SEP]=102.
  corpus  column 2 of the first 512 lines of sms-spam.tsv, each tokenized with the
          tokenizer's own settings (special tokens, truncation to 128) but with no padding;
          sorted by length descending (ties keep file order), batched 32 at a time, padded
          (id 0) to the longest in the batch with the matching attention mask. Tokenization
          is outside the timing.
Timing (same rule as `adaptermix bench encoder --seconds S`): for each workload one warm-up
pass (fixed: one forward of the 32 x 128 batch; corpus: all 16 batches), then whole passes
until at least S seconds (default 2) have gone by; seconds = that wall-clock time.

FLOPs (what "gflops" counts; both sides use this formula):
  model FLOPs on real (unpadded) tokens only, per sequence of n real tokens:
      n * L * ( 2*(4*C*C + 2*C*F)  +  2*2*n*C )
  with L = 6 layers, C = 384 hidden, F = 1536 FFN: the first term is the Q, K, V, output
  and two FFN projections (a multiply-add = 2 FLOPs), the second is Q.K^T and P.V over the
  sequence's own n tokens. Embeddings, layer norms, softmax, GELU and pooling are not
  counted. gflops = FLOPs of all timed forwards / timed seconds / 1e9.
  tok_per_s counts real tokens, seq_per_s sequences; both per timed second.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / ".cache/assets/all-MiniLM-L6-v2"
CORPUS_TSV = ROOT / ".cache/assets/sms-spam.tsv"
ONNX_PATH = ROOT / ".cache/bench/minilm.onnx"

THREADS = 2
BATCH = 32
SEQ_LEN = 128
CORPUS_SENTENCES = 512
CLS_ID, SEP_ID = 101, 102
SECONDS = 2.0  # adaptermix's default for --seconds; bench/peer.sh passes the same value to all

# Offline only: the model comes from the local folder, never from a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def log(msg: str) -> None:
    print(f"peer: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- workloads
def model_dims(model_dir: Path) -> tuple[int, int, int]:
    cfg = json.loads((model_dir / "config.json").read_text())
    return cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"]


def seq_flops(n: int, layers: int, c: int, f: int) -> int:
    """Model FLOPs for one sequence of n real tokens (see the module docstring)."""
    return n * layers * (2 * (4 * c * c + 2 * c * f) + 2 * 2 * n * c)


def read_corpus(tsv: Path, count: int) -> list[str]:
    texts = []
    with tsv.open(encoding="utf-8", newline="") as fh:
        for line in fh:
            if len(texts) == count:
                break
            line = line.rstrip("\r\n")
            texts.append(line.split("\t", 1)[1])
    if len(texts) != count:
        sys.exit(f"peer: {tsv} has only {len(texts)} lines, need {count}")
    return texts


def quiet_transformers():
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_tokenizer(model_dir: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir / "tokenizer.json"))


def fixed_ids(tokenizer, texts: list[str]):
    """32 rows of [CLS] + 126 ids + [SEP] from the joined corpus (no specials, no truncation)."""
    import numpy as np

    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = tokenizer.encode(" ".join(texts), add_special_tokens=False).ids
    body = SEQ_LEN - 2
    need = BATCH * body
    if len(ids) < need:
        sys.exit(f"peer: joined corpus gives {len(ids)} ids, need {need}")
    rows = np.asarray(ids[:need], dtype=np.int64).reshape(BATCH, body)
    input_ids = np.empty((BATCH, SEQ_LEN), dtype=np.int64)
    input_ids[:, 0] = CLS_ID
    input_ids[:, 1:-1] = rows
    input_ids[:, -1] = SEP_ID
    mask = np.ones_like(input_ids)
    return input_ids, mask, np.zeros_like(input_ids)


def corpus_batches(tokenizer, texts: list[str]):
    """Length-sorted (descending, stable) batches of 32 with dynamic padding."""
    import numpy as np

    # The shipped tokenizer.json pads every sequence to 128 (padding Fixed 128); padding here
    # is dynamic, so switch it off and keep its truncation (max 128) and special tokens.
    tokenizer.no_padding()
    trunc = tokenizer.truncation
    if not trunc or trunc.get("max_length") != SEQ_LEN:
        sys.exit(f"peer: expected tokenizer truncation to {SEQ_LEN}, found {trunc}")
    encs = [tokenizer.encode(t).ids for t in texts]
    order = sorted(range(len(encs)), key=lambda i: (-len(encs[i]), i))
    batches = []
    for start in range(0, len(order), BATCH):
        group = [encs[i] for i in order[start:start + BATCH]]
        width = max(len(e) for e in group)
        ids = np.zeros((len(group), width), dtype=np.int64)
        mask = np.zeros((len(group), width), dtype=np.int64)
        for r, e in enumerate(group):
            ids[r, :len(e)] = e
            mask[r, :len(e)] = 1
        batches.append((ids, mask, np.zeros_like(ids)))
    lengths = [len(e) for e in encs]
    return batches, lengths


# ---------------------------------------------------------------------------- engines
class TorchEngine:
    name = "pytorch"

    def __init__(self, model_dir: Path, threads: int):
        import torch

        transformers = quiet_transformers()
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self.torch = torch
        self.model = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        attn = getattr(self.model.config, "_attn_implementation", "?")
        self.versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                         "attn_implementation": attn, "torch_threads": torch.get_num_threads()}
        log(f"pytorch: torch {torch.__version__}, transformers {transformers.__version__}, "
            f"attention {attn}, {torch.get_num_threads()} threads, BLAS/CPU: "
            f"{torch.backends.cpu.get_cpu_capability()}")

    def prepare(self, ids, mask, types):
        t = self.torch
        return t.from_numpy(ids), t.from_numpy(mask), t.from_numpy(types)

    def __call__(self, batch):
        ids, mask, types = batch
        with self.torch.inference_mode():
            h = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def export_onnx(model_dir: Path, path: Path) -> None:
    """Export last_hidden_state with dynamic batch and sequence axes (once; cached)."""
    import warnings

    import numpy as np
    import torch

    transformers = quiet_transformers()
    log(f"exporting {path} with torch {torch.__version__} (TorchScript exporter)")
    model = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True,
                                                   attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    wrapped = LastHidden(model).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (2, 16), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    types = torch.zeros_like(ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes
        torch.onnx.export(
            wrapped, (ids, mask, types), str(tmp), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                          "last_hidden_state": axes},
            do_constant_folding=True, external_data=False)

    # Check the export against PyTorch at another shape (dynamic axes really dynamic).
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    ids = torch.randint(1000, 30000, (3, 37), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    mask[2, 5:] = 0
    types = torch.zeros_like(ids)
    with torch.no_grad():
        ref = wrapped(ids, mask, types).numpy()
    got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                          "token_type_ids": types.numpy()})[0]
    real = mask.numpy().astype(bool)
    err = float(np.abs(ref - got)[real].max())
    if err > 1e-3:
        tmp.unlink()
        sys.exit(f"peer: ONNX export differs from PyTorch by {err:g} on real tokens")
    log(f"export ok (max |onnx - torch| on real tokens = {err:.2e})")
    os.replace(tmp, path)


class OrtEngine:
    name = "onnxruntime"

    def __init__(self, model_dir: Path, threads: int, onnx_path: Path):
        import numpy as np
        import onnxruntime as ort

        if not onnx_path.exists():
            export_onnx(model_dir, onnx_path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.np = np
        self.sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.versions = {"onnxruntime": ort.__version__, "providers": self.sess.get_providers(),
                         "onnx_model": str(onnx_path.relative_to(ROOT) if onnx_path.is_relative_to(ROOT) else onnx_path)}
        log(f"onnxruntime: {ort.__version__}, providers {self.sess.get_providers()}, "
            f"intra_op {threads}, inter_op 1, graph optimisation ALL, model {onnx_path}")

    def prepare(self, ids, mask, types):
        np = self.np
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return feeds, mask[..., None].astype(np.float32)

    def __call__(self, batch):
        feeds, m = batch
        h = self.sess.run(["last_hidden_state"], feeds)[0]
        return (h * m).sum(1) / self.np.maximum(m.sum(1), 1e-9)


# ---------------------------------------------------------------------------- timing
def time_passes(engine, batches, seconds: float) -> tuple[int, float]:
    """One warm-up pass over `batches`, then whole passes until `seconds` have gone by."""
    for b in batches:
        engine(b)
    passes = 0
    t0 = time.perf_counter()
    while True:
        for b in batches:
            engine(b)
        passes += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return passes, elapsed


def rates(sequences: int, tokens: int, flops: int, seconds: float) -> dict:
    return {"seconds": round(seconds, 6), "seq_per_s": round(sequences / seconds, 3),
            "tok_per_s": round(tokens / seconds, 3), "gflops": round(flops / seconds / 1e9, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=["ort", "torch"], required=True)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--seconds", type=float, default=SECONDS,
                    help="seconds to repeat each measurement for, after one warm-up pass")
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--corpus", type=Path, default=CORPUS_TSV)
    ap.add_argument("--onnx", type=Path, default=ONNX_PATH)
    args = ap.parse_args()

    for p in (args.model_dir / "config.json", args.model_dir / "tokenizer.json", args.corpus):
        if not p.exists():
            sys.exit(f"peer: {p} is missing; run `bash scripts/setup.sh` (or `make setup`) first")
    layers, c, f = model_dims(args.model_dir)

    texts = read_corpus(args.corpus, CORPUS_SENTENCES)
    fixed = fixed_ids(load_tokenizer(args.model_dir), texts)
    batches, lengths = corpus_batches(load_tokenizer(args.model_dir), texts)
    corpus_tokens = sum(lengths)
    corpus_flops = sum(seq_flops(n, layers, c, f) for n in lengths)
    fixed_flops = BATCH * seq_flops(SEQ_LEN, layers, c, f)

    if args.engine == "torch":
        engine = TorchEngine(args.model_dir, args.threads)
    else:
        engine = OrtEngine(args.model_dir, args.threads, args.onnx)

    fb = engine.prepare(*fixed)
    cb = [engine.prepare(*b) for b in batches]

    reps, secs = time_passes(engine, [fb], args.seconds)
    fixed_out = {"batch": BATCH, "seq_len": SEQ_LEN, "sequences": BATCH * reps,
                 **rates(BATCH * reps, BATCH * SEQ_LEN * reps, fixed_flops * reps, secs)}
    log(f"{engine.name} fixed: {reps} forwards of {BATCH}x{SEQ_LEN} in {secs:.3f} s, "
        f"{fixed_out['seq_per_s']:.1f} seq/s, {fixed_out['gflops']:.1f} GFLOP/s")

    passes, secs = time_passes(engine, cb, args.seconds)
    corpus_out = {"sentences": CORPUS_SENTENCES, "tokens": corpus_tokens,
                  "mean_tokens": round(corpus_tokens / CORPUS_SENTENCES, 3), "batch": BATCH,
                  **rates(CORPUS_SENTENCES * passes, corpus_tokens * passes,
                          corpus_flops * passes, secs)}
    log(f"{engine.name} corpus: {passes} passes of {len(batches)} batches ({corpus_tokens} tokens) "
        f"in {secs:.3f} s, {corpus_out['seq_per_s']:.1f} seq/s, {corpus_out['gflops']:.1f} GFLOP/s")

    result = {"engine": engine.name, "threads": args.threads, "fixed": fixed_out,
              "corpus": corpus_out, "sgemm_gflops": None, "versions": engine.versions}
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        fx, co = fixed_out, corpus_out
        print(f"{engine.name}, {args.threads} threads ({', '.join(f'{k} {v}' for k, v in engine.versions.items())})")
        print(f"(a) {BATCH} x {SEQ_LEN} fixed        : {fx['seq_per_s']:8.1f} seq/s {fx['tok_per_s']:9.0f} tok/s "
              f"{fx['gflops']:6.1f} GFLOP/s")
        print(f"(b) 512 SMS, mean {co['mean_tokens']:.1f} tok: {co['seq_per_s']:8.1f} seq/s {co['tok_per_s']:9.0f} tok/s "
              f"{co['gflops']:6.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
