"""Fidelity of a sentence-transformers model to a reference one on held-out lines, as `kiln prune
--json` reports it: mean and worst cosine of the embeddings, Spearman of pairwise similarities."""
import numpy as np
from scipy.stats import spearmanr


def read_lines(path):
    return [line.rstrip("\n") for line in open(path) if line.strip()]


class Fidelity:
    def __init__(self, reference_model, texts):
        self.texts = texts
        self.reference = self.embed(reference_model)
        self.pairs = np.triu_indices(len(texts), 1)
        self.reference_sims = (self.reference @ self.reference.T).numpy()[self.pairs]

    def embed(self, model):
        return model.encode(self.texts, batch_size=32, convert_to_tensor=True,
                            normalize_embeddings=True)

    def __call__(self, model):
        got = self.embed(model)
        cos = (got * self.reference).sum(1)
        sims = (got @ got.T).numpy()[self.pairs]
        return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
                "spearman": float(spearmanr(self.reference_sims, sims).correlation)}
