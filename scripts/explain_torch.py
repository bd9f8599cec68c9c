#!/usr/bin/env python3
"""PyTorch cross-check of `kiln explain`'s gradient methods on a sentence-transformers model.

Computes gradient x input and Integrated Gradients (midpoint rule, [PAD] baseline keeping
[CLS]/[SEP]) of the cosine similarity between TEXT's mean-pooled embedding and TARGET's, on
the word embeddings, with torch autograd. Writes them to FIXTURE (the committed
tests/fixtures/explain/minilm_gradients.json, checked by `cargo test --test kiln explain::`) and,
given kiln's JSON reports, prints the comparison:

    kiln explain --model DIR --method grad-input --target TARGET --out gi.json TEXT
    kiln explain --model DIR --method integrated-gradients --target TARGET --out ig.json TEXT
    python scripts/explain_torch.py DIR TEXT TARGET FIXTURE [gi.json ig.json]

Needs torch and sentence-transformers (a venv; CI does not run this).
"""
import json
import sys

import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, text, target, fixture = sys.argv[1:5]
    reports = sys.argv[5:7]
    torch.set_num_threads(2)
    st = SentenceTransformer(model_dir, device="cpu")
    st.eval()
    bert = st[0].auto_model
    tok = st.tokenizer
    enc = tok([text], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        other = st.encode([target], convert_to_tensor=True)[0]

    def f(word_vectors):
        out = bert(inputs_embeds=word_vectors, attention_mask=mask.expand(word_vectors.shape[0], -1),
                   token_type_ids=torch.zeros_like(ids).expand(word_vectors.shape[0], -1))
        h = out.last_hidden_state
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1)
        return torch.nn.functional.cosine_similarity(pooled, other.unsqueeze(0), dim=1)

    emb = bert.embeddings.word_embeddings
    x = emb(ids).detach()
    xg = x.clone().requires_grad_(True)
    fx = f(xg)
    fx.sum().backward()
    grad_input = (xg * xg.grad).sum(-1)[0]

    special = {tok.cls_token_id, tok.sep_token_id}
    base_ids = torch.tensor([[i if i in special else tok.pad_token_id for i in ids[0].tolist()]])
    base = emb(base_ids).detach()
    steps = 64
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    points = (base + alphas.view(-1, 1, 1) * (x - base)).requires_grad_(True)
    f(points).sum().backward()
    ig = ((x - base)[0] * points.grad.mean(0)).sum(-1)
    with torch.no_grad():
        fb = f(base).item()

    tokens = tok.convert_ids_to_tokens(ids[0])
    with open(fixture, "w") as out:
        json.dump({
            "generator": "scripts/explain_torch.py (torch autograd on sentence-transformers)",
            "text": text, "target": target, "tokens": tokens, "steps": steps, "baseline": "pad",
            "target_value": fx.item(), "baseline_value": fb,
            "grad_input": grad_input.tolist(), "integrated_gradients": ig.tolist(),
        }, out, indent=1)
        out.write("\n")
    print(f"wrote {fixture}")
    if not reports:
        return
    gi_path, ig_path = reports
    for name, path, ours in [("grad-input", gi_path, grad_input), ("integrated-gradients", ig_path, ig)]:
        kiln = json.load(open(path))
        assert kiln["tokens"] == tokens, (kiln["tokens"], tokens)
        diff = max(abs(a - b) for a, b in zip(kiln["token_scores"], ours.tolist()))
        scale = max(abs(v) for v in ours.tolist())
        print(f"{name}: f(x) torch {fx.item():.6f} kiln {kiln['target_value']:.6f}; "
              f"max |token score diff| {diff:.2e} (largest score {scale:.3f})")
        for t, a, b in zip(tokens, kiln["token_scores"], ours.tolist()):
            print(f"  {t:>10} kiln {a:+.5f} torch {b:+.5f}")
    print(f"f(baseline) torch {fb:.6f}")


if __name__ == "__main__":
    main()
