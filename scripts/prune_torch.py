#!/usr/bin/env python3
"""PyTorch cross-check of docs/compression.md's unstructured-pruning figures on all-MiniLM-L6-v2.

Prunes the sentence-transformers model 20% (or --rate) with torch.nn.utils.prune's
l1_unstructured (per Linear) and global_unstructured (L1, all Linears), and with Wanda
(|W_ij| * ||X_j||, the round(rate * d_in) lowest per output row; ||X_j|| over the real tokens of
the calibration lines, from forward hooks), then prints the fidelity of the sentence embeddings
to the unpruned model on the held-out lines: mean and worst cosine, and the Spearman correlation
of the pairwise similarities -- the numbers `kiln prune --json` reports.

    python scripts/prune_torch.py [--rate 0.2] [--calibration .cache/compression/train.txt]
        [--heldout .cache/data/fortunes_heldout.txt] [--model .cache/models/all-MiniLM-L6-v2]

Needs torch, sentence-transformers and scipy (not needed by CI).
"""
import argparse
import copy
import json
import pathlib
import sys

import torch
import torch.nn.utils.prune as prune
from sentence_transformers import SentenceTransformer

sys.path.insert(0, str(pathlib.Path(__file__).parent / "lib"))
from fidelity import Fidelity, read_lines  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--rate", type=float, default=0.2)
p.add_argument("--model", default=".cache/models/all-MiniLM-L6-v2")
p.add_argument("--calibration", default=".cache/compression/train.txt")
p.add_argument("--heldout", default=".cache/data/fortunes_heldout.txt")
p.add_argument("--batch-size", type=int, default=16)
args = p.parse_args()
torch.set_num_threads(2)

calibration = read_lines(args.calibration)
heldout = read_lines(args.heldout)
base = SentenceTransformer(args.model, device="cpu")
fidelity = Fidelity(base, heldout)


def linears(model):
    bert = model[0].auto_model
    out = []
    for layer in bert.encoder.layer:
        out += [layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                layer.attention.output.dense, layer.intermediate.dense, layer.output.dense]
    return out


def input_sum_squares():
    """Per Linear, the sum over real calibration tokens of each input feature's square."""
    sums, padding = {}, {}
    def hook(i):
        def record(module, inputs, output):
            x = inputs[0].detach()[padding["keep"]]
            sums[i] = sums.get(i, 0) + (x.double() ** 2).sum(0)
        return record
    hooks = [lin.register_forward_hook(hook(i)) for i, lin in enumerate(linears(base))]
    bert, tok = base[0].auto_model, base.tokenizer
    with torch.inference_mode():
        for start in range(0, len(calibration), args.batch_size):
            batch = tok(calibration[start:start + args.batch_size], padding=True, truncation=True,
                        max_length=base.max_seq_length, return_tensors="pt")
            padding["keep"] = batch["attention_mask"].bool()
            bert(**batch)
    for h in hooks:
        h.remove()
    return sums


results = {}
model = copy.deepcopy(base)
for lin in linears(model):
    prune.l1_unstructured(lin, "weight", amount=args.rate)
results["l1_unstructured"] = fidelity(model)

model = copy.deepcopy(base)
prune.global_unstructured([(lin, "weight") for lin in linears(model)],
                          pruning_method=prune.L1Unstructured, amount=args.rate)
results["global_unstructured"] = fidelity(model)

sums = input_sum_squares()
model = copy.deepcopy(base)
with torch.no_grad():
    for i, lin in enumerate(linears(model)):
        w = lin.weight  # [out, in]
        score = w.abs() * sums[i].sqrt().float()[None, :]
        k = round(args.rate * w.shape[1])
        w.scatter_(1, score.argsort(dim=1, stable=True)[:, :k], 0.0)
results["wanda"] = fidelity(model)

print(json.dumps(results, indent=2))
