#!/usr/bin/env python3
"""Peer benchmark: TextAttack's TextFooler on the same victim, examples and thresholds as
`adaptermix eval --attack textfooler` (docs/attacks.md, docs/benchmarks.md).

    python bench/textfooler_peer.py --adapter DIR --data FILE.jsonl [--out FILE] [--json]

Never run by CI; bench/textfooler.sh sets up its virtualenv (bench/requirements-textattack.txt)
and runs both sides. Offline: the model, the adapter, GloVe and the texts all come from this
checkout's folders.

What is the same on both sides
  victim     all-MiniLM-L6-v2 with the AdapterMix adapter folder loaded by AdapterHub's `adapters`
             (which reads AdapterMix's folders), texts truncated to --max-length tokens, batches of 32.
  examples   the JSON lines written by `adaptermix data export` (id, text, label).
  candidates GloVe 6B 50-d from the tagnews wheel, its first 100,000 words, vectors normalised;
             the --max-candidates nearest neighbours by cosine, kept when cosine >= --synonym-threshold
             (TextAttack: WordSwapEmbedding + WordEmbeddingDistance(min_cos_sim)).
  similarity MiniLM mean-pooled, normalised sentence embeddings of the 15-word window around the
             swap, angular similarity against the text before the swap, >= --similarity-threshold
             (a TextAttack SentenceEncoder with metric="angular", compare_against_original=False,
             window_size=15, skip_text_shorter_than_window=False: AdapterMix compares short texts whole).
  search     TextAttack's GreedyWordSwapWIR(wir_method="delete"); RepeatModification; AdapterMix's
             stop-word list (read from Sources/Attack/TextFooler.swift; TextAttack's check is
             case-sensitive, so each word is given lower-case, capitalised and upper-case);
             UntargetedClassification with --query-budget.
  no POS filter on either side (AdapterMix's is off by default; TextAttack's needs NLTK/flair
  taggers that are not packaged here).
Timing: the attack loop only (the first example's attack included); loading is outside it, as in
AdapterMix's examples/s.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / ".cache/assets/all-MiniLM-L6-v2"


def glove_path() -> Path:
    hits = sorted((ROOT / ".cache/assets").glob("tagnews*/**/glove.6B.50d.txt"))
    if not hits:
        sys.exit("peer: glove.6B.50d.txt not found under .cache/assets: run 'make setup'")
    return hits[0]


def stop_words() -> set[str]:
    src = (ROOT / "Sources/Attack/TextFooler.swift").read_text()
    m = re.search(r'defaultStopWords: Set<String> = Set\("""(.*?)"""', src, re.S)
    if not m:
        sys.exit("peer: could not read defaultStopWords from Sources/Attack/TextFooler.swift")
    words = m.group(1).split()
    return {v for w in words for v in (w, w.capitalize(), w.upper())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--synonym-threshold", type=float, default=0.8)
    ap.add_argument("--similarity-threshold", type=float, default=0.84)
    ap.add_argument("--max-candidates", type=int, default=50)
    ap.add_argument("--query-budget", type=int, default=2000)
    ap.add_argument("--vocabulary", type=int, default=100_000)
    ap.add_argument("--stock-wrapper", action="store_true",
                    help="TextAttack's own HuggingFaceModelWrapper (pads every batch to --max-length) instead of dynamic padding")
    ap.add_argument("--out", help="per-example JSON lines (status, queries, adversarial_text)")
    ap.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    # Importing textattack builds an augmentation recipe that reads NLTK's English stop-words
    # (downloaded at run time otherwise): give NLTK a local corpus folder holding AdapterMix's list.
    nltk_dir = ROOT / ".cache/bench/nltk_data"
    (nltk_dir / "corpora/stopwords").mkdir(parents=True, exist_ok=True)
    (nltk_dir / "corpora/stopwords/english").write_text("\n".join(sorted({w.lower() for w in stop_words()})) + "\n")
    os.environ["NLTK_DATA"] = str(nltk_dir)
    import adapters  # noqa: F401  (registers the adapter model classes)
    from adapters import AutoAdapterModel
    from transformers import AutoModel, AutoTokenizer
    import textattack
    from textattack import Attack
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder
    from textattack.goal_functions import UntargetedClassification
    from textattack.models.wrappers import ModelWrapper
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.shared import WordEmbedding
    from textattack.transformations import WordSwapEmbedding

    t_load = time.perf_counter()
    adapter_dir = Path(args.adapter)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    labels = cfg["adaptermix"]["labels"]
    examples = [json.loads(l) for l in open(args.data) if l.strip()]
    for e in examples:
        if e["label"] not in labels:
            sys.exit(f"peer: {args.data}: example {e['id']} has label {e['label']!r}, not one of the head's {labels}")
        if e.get("text_pair"):
            sys.exit(f"peer: {args.data}: text pairs are not part of this benchmark")

    # --- victim: MiniLM + the adapter and its head, through AdapterHub -----------------------------
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    model = AutoAdapterModel.from_pretrained(str(MODEL_DIR))
    name = model.load_adapter(str(adapter_dir), with_head=True, set_active=True, use_safetensors=True)
    model.eval()

    class Victim(ModelWrapper):
        """Dynamic padding (to the longest text of each batch): faster than TextAttack's stock
        HuggingFaceModelWrapper, which pads every batch to max_length."""

        def __init__(self):
            self.model = model
            self.tokenizer = tokenizer

        def __call__(self, texts):
            enc = tokenizer(list(texts), padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
            with torch.inference_mode():
                return model(**enc).logits.float()

    # --- candidates: GloVe, first N words, normalised ---------------------------------------------
    words, rows = [], []
    with open(glove_path(), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
            if len(words) >= args.vocabulary:
                break
    matrix = np.stack(rows)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    word2index = {w: i for i, w in enumerate(words)}
    index2word = dict(enumerate(words))
    # Nearest neighbours (self first, as TextAttack's nn_matrix expects) for the words of the texts.
    needed = sorted({w.lower() for e in examples for w in textattack.shared.utils.words_from_text(e["text"])} & word2index.keys())
    k = args.max_candidates + 1
    nn = np.zeros((len(words), k), dtype=np.int64)
    ids = np.array([word2index[w] for w in needed], dtype=np.int64)
    for start in range(0, len(ids), 512):
        block = ids[start:start + 512]
        scores = matrix[block] @ matrix.T
        scores[np.arange(len(block)), block] = np.inf  # the word itself first
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        nn[block] = np.take_along_axis(top, order, axis=1)
    embedding = WordEmbedding(matrix, word2index, index2word, nn_matrix=nn)

    # --- sentence similarity: MiniLM windows, angular ----------------------------------------------
    sent_tok = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    sent_model = AutoModel.from_pretrained(str(MODEL_DIR)).eval()

    class MiniLMSimilarity(SentenceEncoder):
        def __init__(self):
            super().__init__(threshold=args.similarity_threshold, metric="angular", compare_against_original=False,
                             window_size=15, skip_text_shorter_than_window=False)
            self.model = self

        def encode(self, sentences):
            enc = sent_tok(list(sentences), padding=True, truncation=True, max_length=128, return_tensors="pt")
            with torch.inference_mode():
                h = sent_model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(e, dim=1)

    class WordCandidates(WordSwapEmbedding):
        """Only candidates that read as one word (GloVe also lists punctuation), as AdapterMix."""

        def _get_replacement_words(self, word):
            return [c for c in super()._get_replacement_words(word)
                    if textattack.shared.utils.words_from_text(c) == [c]]

    if args.stock_wrapper:
        from textattack.models.wrappers import HuggingFaceModelWrapper
        tokenizer.model_max_length = args.max_length
        victim = HuggingFaceModelWrapper(model, tokenizer)
    else:
        victim = Victim()
    goal = UntargetedClassification(victim, query_budget=args.query_budget, model_batch_size=32)
    constraints = [
        RepeatModification(),
        StopwordModification(stopwords=stop_words()),
        WordEmbeddingDistance(embedding=embedding, min_cos_sim=args.synonym_threshold),
        MiniLMSimilarity(),
    ]
    attack = Attack(goal, constraints, WordCandidates(max_candidates=args.max_candidates, embedding=embedding),
                    GreedyWordSwapWIR(wir_method="delete"))
    load_seconds = time.perf_counter() - t_load

    # --- the attacks --------------------------------------------------------------------------------
    out = open(args.out, "w") if args.out else None
    counts = {"skipped": 0, "succeeded": 0, "failed": 0}
    queries_attacked, queries_all, perturbed = 0, 0, []
    t0 = time.perf_counter()
    for e in examples:
        result = attack.attack(e["text"], labels.index(e["label"]))
        q = result.perturbed_result.num_queries
        if isinstance(result, SkippedAttackResult):
            status = "skipped"
        elif isinstance(result, SuccessfulAttackResult):
            status = "succeeded"
            n = len(result.original_result.attacked_text.words)
            changed = len(result.original_result.attacked_text.all_words_diff(result.perturbed_result.attacked_text))
            perturbed.append(changed / max(1, n))
        elif isinstance(result, FailedAttackResult):
            status = "failed"
        else:
            status = type(result).__name__
        counts[status] = counts.get(status, 0) + 1
        queries_all += q
        if status != "skipped":
            queries_attacked += q
        if out:
            out.write(json.dumps({"id": e["id"], "status": status, "queries": q,
                                  "adversarial_text": result.perturbed_result.attacked_text.text}) + "\n")
    seconds = time.perf_counter() - t0
    if out:
        out.close()

    attacked = counts["succeeded"] + counts["failed"]
    summary = {
        "engine": "textattack" + ("-stock-wrapper" if args.stock_wrapper else ""), "textattack": textattack.__version__ if hasattr(textattack, "__version__") else "0.3.11",
        "torch": torch.__version__, "threads": args.threads, "examples": len(examples),
        "skipped": counts["skipped"], "succeeded": counts["succeeded"], "failed": counts["failed"],
        "accuracy_under_attack": counts["failed"] / max(1, len(examples)),
        "attack_success_rate": counts["succeeded"] / max(1, attacked),
        "mean_perturbed_word_fraction": sum(perturbed) / max(1, len(perturbed)),
        "mean_queries": queries_attacked / max(1, attacked),
        "seconds": seconds, "load_seconds": load_seconds,
        "examples_per_second": len(examples) / seconds, "queries_per_second": queries_all / seconds,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for k_, v in summary.items():
            print(f"{k_:>30}: {v}")


if __name__ == "__main__":
    main()
