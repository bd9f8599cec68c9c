#!/usr/bin/env python3
"""Times sentence-transformers on the same texts, threads and batch size as `kiln embed`.

  python scripts/bench_sentence_transformers.py [--model DIR] [--input crates/kiln-bench/data/sentences_1000.txt]
      [--threads 2] [--batch-size 32] [--repeat 3]

Prints one JSON object: texts, seconds (median of --repeat runs after one warm-up run), texts_per_second.
Compare with (same file, same batch size; the median of a few runs):
  target/release/kiln embed --backend ndarray --model DIR --input-file FILE --output /tmp/emb.npy --json
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parent.parent


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(ROOT / ".cache/models/all-MiniLM-L6-v2"))
    p.add_argument("--input", default=str(ROOT / "crates/kiln-bench/data/sentences_1000.txt"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    texts = Path(args.input).read_text(encoding="utf-8").splitlines()
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    times = []
    with torch.inference_mode():
        model.encode(texts[:64], batch_size=args.batch_size, show_progress_bar=False)
        for _ in range(args.repeat):
            start = time.perf_counter()
            model.encode(texts, batch_size=args.batch_size, show_progress_bar=False)
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(json.dumps({
        "implementation": "sentence-transformers",
        "version": __import__("sentence_transformers").__version__,
        "torch": torch.__version__,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "texts": len(texts),
        "seconds": seconds,
        "all_seconds": times,
        "texts_per_second": len(texts) / seconds,
    }))


if __name__ == "__main__":
    main()
