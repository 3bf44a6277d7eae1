#!/usr/bin/env python3
"""Peer benchmark: the work of `adaptermix bench sweep`, done the way a user of the Python tools
would — merge each mixture by plain averaging, then evaluate it with PyTorch (or ONNX Runtime)
on length-sorted batches.

    python bench/sweep_peer.py --mixtures MIX.jsonl --data-dir DIR [--engine torch|ort] [--json]

MIX.jsonl is what `adaptermix bench sweep --predictions` writes (target, members, per-example
correctness); DIR holds `<domain>.jsonl` test examples from `adaptermix data export` (the same
seeded, capped split). Never run by CI; bench/sweep.sh runs both sides.

Per mixture (inside the timing): the members' adapter tensors averaged (θ = 1/k Σ θ_i, the head
from the target), copied into the model, and the target's test examples run in batches of 32,
sorted by length (longest first), each padded to its longest sequence; argmax of the logits.
Per target, once (inside the timing): tokenisation (truncation to --max-length). Outside: loading
the model and the adapter files. torch: AdapterHub `adapters` on transformers, inference_mode,
--threads intra-op threads. ort: the same model (the target's adapter loaded as "mix") exported
once per target with torch.onnx.export, its adapter and head tensors turned from initializers into
graph inputs, so that one InferenceSession per target, with ONNX Runtime's graph optimisations on
(--ort-level, default ORT_ENABLE_ALL), runs every mixture, the averaged tensors fed with the batch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / ".cache/assets/all-MiniLM-L6-v2"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixtures", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--adapters", default=str(ROOT / "out/demo/adapters"))
    ap.add_argument("--engine", choices=["torch", "ort"], default="torch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ort-level", default="ORT_ENABLE_ALL", help="ONNX Runtime graph optimisation level")
    args = ap.parse_args()

    import numpy as np
    import torch
    from safetensors.numpy import load_file
    torch.set_num_threads(args.threads)
    import adapters  # noqa: F401
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer

    mixtures = [json.loads(l) for l in open(args.mixtures) if l.strip()]
    domains = sorted({d for m in mixtures for d in m["members"]})
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))

    # Each domain's adapter body and head, as numpy arrays keyed by the name-free suffix.
    bodies, heads, labels = {}, {}, {}
    for d in domains:
        folder = Path(args.adapters) / f"{d}-pfeiffer"
        cfg = json.loads((folder / "adapter_config.json").read_text())
        labels[d] = cfg["adaptermix"]["labels"]
        name = cfg["name"]
        bodies[d] = {k.replace(f".adapters.{name}.", ".adapters.mix."): v for k, v in load_file(str(folder / "adapter.safetensors")).items()}
        heads[d] = {k.replace(f"heads.{name}.", "heads.mix."): v for k, v in load_file(str(folder / "model_head.safetensors")).items()}

    # ONNX export traces the eager attention (SDPA's traced mask handling is shape-specific).
    model = AutoAdapterModel.from_pretrained(str(MODEL_DIR), **({"attn_implementation": "eager"} if args.engine == "ort" else {}))
    model.eval()
    loaded = [None]

    def load_target(t):
        """The model with the target's adapter and head loaded as "mix" (the head's size is the
        target's); each mixture then overwrites the adapter tensors. Once per target."""
        if loaded[0] == t:
            return
        if loaded[0] is not None:
            model.delete_adapter("mix")
            model.delete_head("mix")
        model.load_adapter(str(Path(args.adapters) / f"{t}-pfeiffer"), with_head=True, load_as="mix", set_active=True, use_safetensors=True)
        model.set_active_adapters("mix")
        model.active_head = "mix"
        model.eval()
        loaded[0] = t

    examples = {}
    for d in {m["target"] for m in mixtures}:
        examples[d] = [json.loads(l) for l in open(Path(args.data_dir) / f"{d}.jsonl") if l.strip()]

    session_for = None
    onnx_files = {}
    if args.engine == "ort":
        import onnxruntime as ort
        import onnx
        dummy = tokenizer(["a b c", "d e"], padding=True, return_tensors="pt")

        class Wrapped(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask).logits

        # One export per target (the head's size differs), before the timing.
        for t in sorted({m["target"] for m in mixtures}):
            load_target(t)
            path = ROOT / f".cache/bench/minilm-pfeiffer-{t}.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.onnx.export(Wrapped(model), (dummy["input_ids"], dummy["attention_mask"]), str(path), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["logits"], opset_version=17,
                              do_constant_folding=False,
                              dynamic_axes={"input_ids": {0: "b", 1: "n"}, "attention_mask": {0: "b", 1: "n"}, "logits": {0: "b"}})
            proto = onnx.load(str(path))
            names = {i.name for i in proto.graph.initializer}
            wanted = list(bodies[t]) + list(heads[t])
            missing = [k for k in wanted if "m." + k not in names and k not in names]
            if missing:
                sys.exit(f"peer: the ONNX export has no initializer for {missing[:3]} …: cannot feed the adapter per mixture")
            prefix = "m." if "m." + wanted[0] in names else ""
            # The adapter's and head's tensors become graph inputs: the optimiser cannot fold them,
            # and each mixture feeds its averaged tensors to the same session.
            fed = {prefix + k for k in wanted}
            for init in [i for i in proto.graph.initializer if i.name in fed]:
                proto.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
                proto.graph.initializer.remove(init)
            onnx.save(proto, str(path))
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, args.ort_level)
            onnx_files[t] = (ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]), prefix)

        def session_for(t, tensors):
            session, prefix = onnx_files[t]
            return session, {prefix + k: np.ascontiguousarray(v) for k, v in tensors.items()}

    correct_total, sequences, agree, compared = 0, 0, 0, 0
    t0 = time.perf_counter()
    tokenised = {}
    for m in mixtures:
        t, members = m["target"], m["members"]
        if t not in tokenised:
            ex = examples[t]
            enc = [tokenizer(e["text"], e.get("text_pair"), truncation=True, max_length=args.max_length)["input_ids"] for e in ex]
            order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
            truth = [labels[t].index(e["label"]) for e in ex]
            batches = []
            for s in range(0, len(order), args.batch_size):
                idx = order[s:s + args.batch_size]
                width = len(enc[idx[0]])
                ids = np.zeros((len(idx), width), dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for r, i in enumerate(idx):
                    ids[r, :len(enc[i])] = enc[i]
                    mask[r, :len(enc[i])] = 1
                batches.append((idx, ids, mask))
            tokenised[t] = (batches, truth)
        batches, truth = tokenised[t]
        # Merge: plain average of the members' adapter tensors; the target's head.
        k = len(members)
        merged = {key: sum(bodies[d][key] for d in members) / k for key in bodies[t]}
        merged.update(heads[t])
        predicted = [0] * len(truth)
        if args.engine == "torch":
            load_target(t)
            params = dict(model.named_parameters())
            with torch.no_grad():
                for key, v in merged.items():
                    params[key].copy_(torch.from_numpy(v))
            with torch.inference_mode():
                for idx, ids, mask in batches:
                    logits = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
                    for r, i in enumerate(idx):
                        predicted[i] = int(logits[r].argmax())
        else:
            s, weights = session_for(t, merged)
            for idx, ids, mask in batches:
                logits = s.run(["logits"], {"input_ids": ids, "attention_mask": mask, **weights})[0]
                for r, i in enumerate(idx):
                    predicted[i] = int(logits[r].argmax())
        bits = [int(p == y) for p, y in zip(predicted, truth)]
        correct_total += sum(bits)
        sequences += len(bits)
        agree += sum(int(a == b) for a, b in zip(bits, m["correct"]))
        compared += len(bits)
    seconds = time.perf_counter() - t0
    out = {"engine": "pytorch" if args.engine == "torch" else "onnxruntime", "threads": args.threads, "mixtures": len(mixtures),
           "sequences": sequences, "seconds": seconds, "mixtures_per_s": len(mixtures) / seconds, "seq_per_s": sequences / seconds,
           "accuracy": correct_total / max(1, sequences), "same_correctness_as_adaptermix": agree / max(1, compared)}
    print(json.dumps(out) if args.json else out)


if __name__ == "__main__":
    main()
