#!/usr/bin/env python3
"""PyTorch cross-check of `kiln prune --method heads,ffn --importance activation --reconstruct`
on all-MiniLM-L6-v2 (docs/compression.md).

Scores heads by sqrt(sum_t ||c_{t,h} W_o[h]||^2) and neurons by ||h_j|| * ||W_2[:, j]|| over the
real tokens of the calibration lines (forward hooks), removes round(rate * heads) heads model-wide
(each layer's scores L2-normalised, every layer keeps one; kiln's select_heads) and
round(rate * width) neurons per layer by zeroing them (equal to shrinking), then refits each
layer's attention-output and FFN-output dense layers by ridge least squares, layer by layer, so
that residual + W x + b matches the original model's pre-LayerNorm sum. Prints the held-out
fidelity after masking and after the refit (mean / min cosine, Spearman of pairwise similarities).

`--select obs` is `kiln prune --obs`: each layer keeps as many heads as above, but which heads
and neurons go is chosen by greedy Optimal Brain Surgeon on the Gram matrix of the original
model's out_proj / FFN-output inputs (bias column appended): remove the group G with the least
tr(W_G^T (Hinv_GG)^-1 W_G), update W and Hinv, repeat.

    python scripts/reconstruct_torch.py [--rate 0.3] [--ridge 1e-3] [--select score|obs]
        [--calibration .cache/compression/train.txt] [--heldout .cache/data/fortunes_heldout.txt]

Needs torch, sentence-transformers and scipy (not needed by CI).
"""
import argparse
import json
import pathlib
import sys

import torch
from sentence_transformers import SentenceTransformer

sys.path.insert(0, str(pathlib.Path(__file__).parent / "lib"))
from fidelity import Fidelity, read_lines  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--rate", type=float, default=0.3)
p.add_argument("--ridge", type=float, default=1e-3)
p.add_argument("--model", default=".cache/models/all-MiniLM-L6-v2")
p.add_argument("--calibration", default=".cache/compression/train.txt")
p.add_argument("--heldout", default=".cache/data/fortunes_heldout.txt")
p.add_argument("--select", choices=["score", "obs"], default="score",
               help="which heads/neurons of each layer go: lowest score, or OBS (kiln prune --obs)")
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)

calibration = read_lines(args.calibration)
heldout = read_lines(args.heldout)
original = SentenceTransformer(args.model, device="cpu")
pruned = SentenceTransformer(args.model, device="cpu")
bert, tok = original[0].auto_model, original.tokenizer
layers, heads = bert.config.num_hidden_layers, bert.config.num_attention_heads
head_dim = bert.config.hidden_size // heads
fidelity = Fidelity(original, heldout)


def batches():
    for start in range(0, len(calibration), 32):
        yield tok(calibration[start:start + 32], padding=True, truncation=True,
                  max_length=original.max_seq_length, return_tensors="pt")


# Activation importance of the original model.
head_sq = torch.zeros(layers, heads, dtype=torch.float64)
neuron_sq = torch.zeros(layers, bert.config.intermediate_size, dtype=torch.float64)
real = {}
grams = {}
hooks = []
for l, layer in enumerate(bert.encoder.layer):
    def attention_output(module, inputs, output, l=l):
        c, w = inputs[0][real["mask"]].double(), module.weight.double()
        ca = torch.cat([c, torch.ones(len(c), 1, dtype=torch.float64)], 1)
        grams[("attention", l)] = grams.get(("attention", l), 0) + ca.T @ ca
        for h in range(heads):
            cols = slice(h * head_dim, (h + 1) * head_dim)
            head_sq[l, h] += ((c[:, cols] @ w[:, cols].T) ** 2).sum()
    def ffn_output(module, inputs, output, l=l):
        neuron_sq[l] += (inputs[0][real["mask"]].double() ** 2).sum(0)
        x = inputs[0][real["mask"]].double()
        xa = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        grams[("ffn", l)] = grams.get(("ffn", l), 0) + xa.T @ xa
    hooks += [layer.attention.output.dense.register_forward_hook(attention_output),
              layer.output.dense.register_forward_hook(ffn_output)]
with torch.inference_mode():
    for batch in batches():
        real["mask"] = batch["attention_mask"].bool()
        bert(**batch)
for h in hooks:
    h.remove()
head_scores = head_sq.sqrt()
neuron_scores = torch.stack([neuron_sq[l].sqrt() * layer.output.dense.weight.double().norm(dim=0)
                             for l, layer in enumerate(bert.encoder.layer)])

# kiln's selection: heads model-wide (per-layer L2-normalised, each layer keeps one), neurons per layer.
normalised = head_scores / head_scores.norm(dim=1, keepdim=True)
ranked = sorted((float(normalised[l, h]), l, h) for l in range(layers) for h in range(heads))
remove, keep = round(args.rate * layers * heads), [[True] * heads for _ in range(layers)]
for _, l, h in ranked:
    if remove == 0:
        break
    if sum(keep[l]) > 1:
        keep[l][h], remove = False, remove - 1
width = neuron_scores.shape[1]
kept_neurons = [sorted(neuron_scores[l].argsort(stable=True)[round(args.rate * width):].tolist())
                for l in range(layers)]


def obs_remove(gram, weight, groups, remove, ridge):
    """Greedy OBS: removes `remove` of `groups` (lists of input columns) from `weight` [out, in]
    (bias column appended, never removed), each time the group whose removal, with the optimal
    update of the rest, adds least squared error. Returns the kept group indices."""
    n = gram.shape[0]
    h = gram.clone()
    h[range(n - 1), range(n - 1)] += ridge * h.diagonal()[:-1].mean()
    hinv = torch.linalg.inv(h)
    w = weight.clone()
    alive = list(range(len(groups)))
    for _ in range(remove):
        best, best_cost = None, None
        for g in alive:
            cols = groups[g]
            block = hinv[cols][:, cols]
            wg = w[:, cols]
            cost = torch.trace(wg @ torch.linalg.solve(block, wg.T)) if len(cols) > 1 else (wg[:, 0] ** 2).sum() / block[0, 0]
            if best_cost is None or cost < best_cost:
                best, best_cost = g, cost
        cols = groups[best]
        block_inv = torch.linalg.inv(hinv[cols][:, cols])
        w -= w[:, cols] @ block_inv @ hinv[cols, :]
        hinv -= hinv[:, cols] @ block_inv @ hinv[cols, :]
        alive.remove(best)
    return sorted(alive)


def obs_neurons(l):
    layer = bert.encoder.layer[l]
    w = torch.cat([layer.output.dense.weight.double(), layer.output.dense.bias.double()[:, None]], 1)
    gram, n = grams[("ffn", l)], width
    # Vectorised single-column greedy.
    h = gram.clone()
    h[range(n), range(n)] += args.ridge * h.diagonal()[:-1].mean()
    hinv = torch.linalg.inv(h)
    alive = torch.ones(n + 1, dtype=torch.bool)
    for _ in range(round(args.rate * width)):
        cost = (w ** 2).sum(0) / hinv.diagonal()
        cost[~alive] = float("inf")
        cost[n] = float("inf")
        j = int(cost.argmin())
        w -= torch.outer(w[:, j], hinv[j, :]) / hinv[j, j]
        hinv -= torch.outer(hinv[:, j], hinv[j, :]) / hinv[j, j]
        alive[j] = False
    return [j for j in range(n) if alive[j]]


def obs_heads(l, count):
    layer = bert.encoder.layer[l]
    dense = layer.attention.output.dense
    w = torch.cat([dense.weight.double(), dense.bias.double()[:, None]], 1)
    groups = [list(range(h * head_dim, (h + 1) * head_dim)) for h in range(heads)]
    return obs_remove(grams[("attention", l)], w, groups, heads - count, args.ridge)


if args.select == "obs":
    kept_neurons = [obs_neurons(l) for l in range(layers)]
    counts = [sum(k) for k in keep]  # how many heads each layer keeps follows the scores
    for l in range(layers):
        kept = obs_heads(l, counts[l])
        keep[l] = [h in kept for h in range(heads)]
student = pruned[0].auto_model
with torch.no_grad():
    for l, layer in enumerate(student.encoder.layer):
        for h in range(heads):
            if not keep[l][h]:
                rows = slice(h * head_dim, (h + 1) * head_dim)
                for lin in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value):
                    lin.weight[rows] = 0
                    lin.bias[rows] = 0
                layer.attention.output.dense.weight[:, rows] = 0
        drop = torch.ones(width, dtype=torch.bool)
        drop[kept_neurons[l]] = False
        layer.intermediate.dense.weight[drop] = 0
        layer.intermediate.dense.bias[drop] = 0
        layer.output.dense.weight[:, drop] = 0
results = {"heads_per_layer": [sum(k) for k in keep], "masked": fidelity(pruned)}


def block_io(model, l, block):
    """Per real token: the dense layer's input, its output and the residual it is added to."""
    layer = model.encoder.layer[l]
    out_module = layer.attention.output if block == "attention" else layer.output
    store, xs, ys, rs = {}, [], [], []
    h1 = out_module.dense.register_forward_hook(
        lambda m, i, o: store.update(x=i[0], y=o))
    h3 = out_module.register_forward_hook(lambda m, i, o: store.update(res=i[1]))
    with torch.inference_mode():
        for batch in batches():
            model(**batch)
            mask = batch["attention_mask"].bool()
            xs.append(store["x"][mask]); ys.append(store["y"][mask]); rs.append(store["res"][mask])
    for h in (h1, h3):
        h.remove()
    return torch.cat(xs).double(), torch.cat(ys).double(), torch.cat(rs).double()


for l in range(layers):
    for block in ("attention", "ffn"):
        _, y_orig, r_orig = block_io(bert, l, block)
        x, _, r = block_io(student, l, block)
        layer = student.encoder.layer[l]
        dense = layer.attention.output.dense if block == "attention" else layer.output.dense
        cols = ([h * head_dim + i for h in range(heads) if keep[l][h] for i in range(head_dim)]
                if block == "attention" else kept_neurons[l])
        design = torch.cat([x[:, cols], torch.ones(len(x), 1, dtype=torch.float64)], 1)
        gram = design.T @ design
        ridge = args.ridge * gram.diagonal()[:-1].mean()
        gram[range(len(cols)), range(len(cols))] += ridge
        solution = torch.linalg.solve(gram, design.T @ (y_orig + r_orig - r))
        with torch.no_grad():
            weight = torch.zeros_like(dense.weight)
            weight[:, cols] = solution[:-1].T.float()
            dense.weight.copy_(weight)
            dense.bias.copy_(solution[-1].float())
results["reconstructed"] = fidelity(pruned)
print(json.dumps(results, indent=2))
