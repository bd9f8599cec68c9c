"""Bad inputs raise Python exceptions of the right kind, naming the argument (and shapes)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import kiln
from conftest import FIXTURES

CASE = FIXTURES / "encoder" / "post_relu"  # [S, B, E] = [7, 3, 16], 4 heads


@pytest.fixture(scope="module")
def encoder():
    return kiln.TransformerEncoder.from_dir(CASE, backend="flex")


@pytest.fixture(scope="module")
def text(minilm):
    return kiln.TextEncoder(minilm, backend="flex")


def test_missing_models(tmp_path, minilm):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        kiln.TextEncoder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        kiln.TransformerEncoder.from_dir(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        kiln.TextEncoder(tmp_path / "file")
    # A directory without its tokenizer: the message names the file.
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(minilm / "config.json", partial / "config.json")
    shutil.copy(minilm / "model.safetensors", partial / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        kiln.TextEncoder(partial)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        kiln.TransformerEncoder.from_dir(empty)


def test_invalid_model_files(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(CASE, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RuntimeError, match="safetensors"):
        kiln.TransformerEncoder.from_dir(broken)


def test_bad_options(minilm):
    with pytest.raises(ValueError, match="backend"):
        kiln.TextEncoder(minilm, backend="cuda")
    with pytest.raises(ValueError, match="precision"):
        kiln.TextEncoder(minilm, precision="fp8")
    with pytest.raises(ValueError, match="backend"):
        kiln.TransformerEncoder.from_dir(CASE, backend="tpu")


def test_bad_texts(text):
    with pytest.raises(TypeError, match="single str"):
        text.embed("one text")
    with pytest.raises(TypeError, match="texts"):
        text.embed([1, 2])
    with pytest.raises(TypeError, match="texts"):
        text.embed(None)
    with pytest.raises(ValueError, match="batch_size"):
        text.embed(["a"], batch_size=0)
    with pytest.raises(TypeError):
        text.similarity("a", ["b"])


def test_bad_shapes(encoder):
    src = np.zeros((7, 3, 16), dtype=np.float32)
    with pytest.raises(ValueError, match=r"src has shape \(7, 3\)"):
        encoder.forward(src[:, :, 0])
    with pytest.raises(ValueError, match=r"src.*\[7, 3, 8\]"):
        encoder.forward(np.zeros((7, 3, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"src_mask.*\[7, 6\]"):
        encoder.forward(src, src_mask=np.zeros((7, 6), dtype=bool))
    with pytest.raises(ValueError, match=r"src_mask has shape \(7,\)"):
        encoder.forward(src, src_mask=np.zeros(7, dtype=bool))
    with pytest.raises(ValueError, match=r"src_key_padding_mask.*\[7, 3\]"):
        encoder.forward(src, src_key_padding_mask=np.zeros((7, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"src_key_padding_mask has shape \(3, 7, 1\)"):
        encoder.forward(src, src_key_padding_mask=np.zeros((3, 7, 1), dtype=bool))


def test_bad_values_and_dtypes(encoder):
    src = np.zeros((7, 3, 16), dtype=np.float32)
    bad = src.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        encoder.forward(bad)
    with pytest.raises(TypeError, match="src has dtype int64"):
        encoder.forward(src.astype(np.int64))
    with pytest.raises(TypeError, match="src has dtype bool"):
        encoder.forward(src.astype(bool))
    with pytest.raises(TypeError, match="src_mask has dtype int32"):
        encoder.forward(src, src_mask=np.zeros((7, 7), dtype=np.int32))
    with pytest.raises(TypeError, match="src"):
        encoder.forward("not an array")
