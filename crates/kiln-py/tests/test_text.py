"""kiln.TextEncoder: sentence-transformers' numbers (the committed fixtures: cosine >= 0.9999,
max-abs <= 1e-4) and the same numbers as `kiln embed` (1e-6)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import kiln
from conftest import max_abs, run_cli


@pytest.fixture(scope="module")
def flex(minilm):
    return kiln.TextEncoder(minilm, backend="flex")


@pytest.mark.parametrize("backend", ["ndarray", "flex"])
def test_matches_sentence_transformers(minilm, minilm_reference, backend):
    encoder = kiln.TextEncoder(minilm, backend=backend)
    got = encoder.embed(minilm_reference["sentences"], batch_size=8)
    expected = minilm_reference["embeddings"]
    assert got.shape == expected.shape and got.dtype == np.float32
    cos = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cos.min() >= 0.9999
    assert max_abs(got, expected) <= 1e-4


def test_tokens_match_the_python_tokenizer(flex, minilm_reference):
    tokenized = flex.tokenize(minilm_reference["sentences"])
    assert [t["ids"] for t in tokenized] == minilm_reference["input_ids"]
    assert [t["tokens"] for t in tokenized] == minilm_reference["tokens"]


def test_matches_the_cli(flex, minilm, minilm_reference, kiln_cli, tmp_path):
    # One text per line: texts holding a line break cannot be written so.
    texts = [t for t in minilm_reference["sentences"] if "\n" not in t and "\r" not in t]
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    run_cli(kiln_cli, "embed", "--backend", "flex", "--model", str(minilm),
            "--input-file", str(lines), "--output", str(out))
    assert max_abs(flex.embed(texts), np.load(out)) <= 1e-6

    run_cli(kiln_cli, "embed", "--backend", "flex", "--model", str(minilm), "--no-normalize",
            "--batch-size", "5", "--input-file", str(lines), "--output", str(out))
    assert max_abs(flex.embed(texts, batch_size=5, normalize=False), np.load(out)) <= 1e-6


def test_options(flex, minilm_reference):
    texts = minilm_reference["sentences"]
    normalized = flex.embed(texts)
    raw = flex.embed(texts, normalize=False)
    assert flex.normalize is True
    assert np.allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    assert max_abs(raw / np.linalg.norm(raw, axis=1, keepdims=True), normalized) <= 1e-6
    # Batching changes the order of work, not the vectors.
    assert max_abs(flex.embed(texts, batch_size=1), flex.embed(texts, batch_size=64)) <= 1e-5
    assert flex.embed([]).shape == (0, flex.dim)
    assert flex.embed(("a tuple", "of texts")).shape == (2, 384)


def test_similarity(flex):
    same = flex.similarity("A man is eating food.", "A man is eating a meal.")
    other = flex.similarity("A man is eating food.", "The stock market fell sharply.")
    assert isinstance(same, float) and -1.0 <= other < same <= 1.0
    matrix = flex.similarity(["A man is eating food.", "A cat sleeps."],
                             ["A man is eating a meal.", "A kitten naps.", "Stocks fell."])
    assert matrix.shape == (2, 3)
    assert abs(matrix[0, 0] - same) <= 1e-6


def test_properties_and_help(flex, minilm):
    assert flex.dim == 384
    assert flex.max_seq_length == 256
    assert flex.backend == "flex" and flex.precision == "f32"
    assert flex.path == minilm
    assert "TextEncoder(" in repr(flex)
    assert "Args:" in kiln.TextEncoder.__doc__
    assert "batch_size" in kiln.TextEncoder.embed.__doc__
    signature = inspect.signature(kiln.TextEncoder.embed)
    assert signature.parameters["batch_size"].default == 32
    assert signature.parameters["normalize"].default is None


def test_auto_backend_and_precision(minilm):
    encoder = kiln.TextEncoder(minilm, precision="auto")
    assert encoder.backend in ("flex", "wgpu")
    assert encoder.precision == "f32"
