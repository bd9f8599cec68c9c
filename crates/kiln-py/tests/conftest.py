"""Shared fixtures of the Python package's tests: the repository's committed PyTorch and
sentence-transformers reference data, all-MiniLM-L6-v2, and the `kiln` CLI binary."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
SENTENCES_1000 = REPO / "crates" / "kiln-bench" / "data" / "sentences_1000.txt"

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "U8": np.uint8, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (the fixtures' dtypes), without the safetensors package."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    tensors = {}
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=_DTYPES[meta["dtype"]])
        tensors[key] = array.reshape(meta["shape"]).copy()
    return tensors


@dataclass
class EncoderCase:
    """One PyTorch reference case of tests/fixtures/encoder (scripts/gen_fixtures.py)."""

    name: str
    dir: Path
    tensors: dict[str, np.ndarray]
    is_causal: bool
    batch_first: bool

    @property
    def src(self) -> np.ndarray:
        return self.tensors["src"].astype(np.float32)

    @property
    def src_mask(self) -> np.ndarray | None:
        if "src_mask_bool" in self.tensors:
            return self.tensors["src_mask_bool"] > 0
        return self.tensors.get("src_mask_float")

    @property
    def key_padding_mask(self) -> np.ndarray | None:
        if "key_padding_mask" in self.tensors:
            return self.tensors["key_padding_mask"] > 0
        return self.tensors.get("key_padding_mask_float")

    def output_error(self, output: np.ndarray) -> float:
        """Max |output - PyTorch| over the positions that are not padding."""
        expected = self.tensors["expected"]
        assert output.shape == expected.shape, self.name
        valid = self.tensors["valid"] > 0  # [B, S]
        if not self.batch_first:
            valid = valid.T  # [S, B]
        diff = np.abs(output - expected)[valid]
        return float(diff.max()) if diff.size else 0.0

    def attentions(self) -> np.ndarray:
        """PyTorch's per-layer weights stacked: [L, B, H, S, S]."""
        layers = sorted(k for k in self.tensors if k.startswith("attn."))
        return np.stack([self.tensors[f"attn.{i}"] for i in range(len(layers))])


def encoder_cases() -> list[EncoderCase]:
    root = FIXTURES / "encoder"
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        meta = json.loads((folder / "meta.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        cases.append(
            EncoderCase(
                name=folder.name,
                dir=folder,
                tensors=read_safetensors(folder / "case.safetensors"),
                is_causal=bool(meta["is_causal"]),
                batch_first=bool(config.get("batch_first", False)),
            )
        )
    assert len(cases) >= 10, f"expected the committed fixtures in {root}"
    return cases


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2, fetched by scripts/fetch_minilm.sh when missing (as the Rust tests do)."""
    path = Path(os.environ.get("KILN_MINILM", REPO / ".cache" / "models" / "all-MiniLM-L6-v2"))
    if not (path / "model.safetensors").is_file():
        subprocess.run(["bash", str(REPO / "scripts" / "fetch_minilm.sh"), str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def minilm_reference() -> dict:
    """sentence-transformers' texts, token ids and embeddings (tests/fixtures/minilm)."""
    sentences = json.loads((FIXTURES / "minilm" / "sentences.json").read_text())
    sentences["embeddings"] = np.load(FIXTURES / "minilm" / "embeddings.npy")
    return sentences


@pytest.fixture(scope="session")
def kiln_cli() -> Path:
    """The `kiln` binary: $KILN, else the workspace's target/debug or target/release build."""
    given = os.environ.get("KILN")
    if given:
        path = Path(given)
        assert path.is_file(), f"KILN={given}: no such file"
        return path
    for candidate in (REPO / "target" / "debug" / "kiln", REPO / "target" / "release" / "kiln"):
        if candidate.is_file():
            return candidate
    # Never a skip: a comparison that silently does not run is a test that cannot fail.
    pytest.fail("no kiln CLI binary: set KILN, or cargo build -p kiln-cli")


def run_cli(kiln_cli: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(kiln_cli), *args], capture_output=True, text=True)
    assert result.returncode == 0, f"kiln {' '.join(args)} failed:\n{result.stderr}"
    return result


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
