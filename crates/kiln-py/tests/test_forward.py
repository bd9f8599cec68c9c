"""kiln.TransformerEncoder: PyTorch's numbers (the committed fixtures, 1e-5 on the CPU backends)
and the same numbers as `kiln forward` (1e-6)."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from conftest import encoder_cases, max_abs, run_cli

CASES = encoder_cases()
CPU_BACKENDS = ["ndarray", "flex"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_pytorch(case, backend):
    model = kiln.TransformerEncoder.from_dir(case.dir, backend=backend)
    assert model.backend == backend
    assert model.batch_first == case.batch_first
    kwargs = dict(
        src_mask=case.src_mask,
        src_key_padding_mask=case.key_padding_mask,
        is_causal=case.is_causal,
    )
    output = model.forward(case.src, **kwargs)
    assert output.dtype == np.float32
    assert case.output_error(output) <= 1e-5

    output, weights = model.forward(case.src, need_weights=True, **kwargs)
    assert case.output_error(output) <= 1e-5
    assert weights.shape[0] == model.num_layers
    assert max_abs(weights, case.attentions()) <= 1e-5


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_the_cli(case, kiln_cli, tmp_path):
    src = tmp_path / "src.npy"
    np.save(src, case.src)
    args = [
        "forward", "--backend", "flex",
        "--config", str(case.dir / "config.json"),
        "--weights", str(case.dir / "model.safetensors"),
        "--input", str(src),
        "--output", str(tmp_path / "out.npy"),
        "--attention-out", str(tmp_path / "attn.npy"),
    ]
    if case.src_mask is not None:
        np.save(tmp_path / "mask.npy", case.src_mask)
        args += ["--mask", str(tmp_path / "mask.npy")]
    if case.key_padding_mask is not None:
        np.save(tmp_path / "kpm.npy", case.key_padding_mask)
        args += ["--key-padding-mask", str(tmp_path / "kpm.npy")]
    if case.is_causal:
        args.append("--causal")
    run_cli(kiln_cli, *args)

    model = kiln.TransformerEncoder.from_dir(case.dir, backend="flex")
    output, weights = model.forward(
        case.src,
        src_mask=case.src_mask,
        src_key_padding_mask=case.key_padding_mask,
        is_causal=case.is_causal,
        need_weights=True,
    )
    assert max_abs(output, np.load(tmp_path / "out.npy")) <= 1e-6
    assert max_abs(weights, np.load(tmp_path / "attn.npy")) <= 1e-6


def test_inputs_are_read_in_any_layout_and_float_dtype():
    case = next(c for c in CASES if c.name == "key_padding")
    model = kiln.TransformerEncoder.from_dir(case.dir, backend="flex")
    expected = model.forward(case.src, src_key_padding_mask=case.key_padding_mask)
    # Fortran order, a strided view, float64 and float16 inputs, nested lists.
    fortran = np.asfortranarray(case.src)
    assert max_abs(model.forward(fortran, src_key_padding_mask=case.key_padding_mask), expected) == 0
    doubled = np.repeat(case.src, 2, axis=2)[:, :, ::2]
    assert max_abs(model.forward(doubled, src_key_padding_mask=case.key_padding_mask), expected) == 0
    as_f64 = case.src.astype(np.float64)
    assert max_abs(model.forward(as_f64, src_key_padding_mask=case.key_padding_mask), expected) == 0
    as_list = model.forward(case.src.tolist(), src_key_padding_mask=case.key_padding_mask.tolist())
    assert max_abs(as_list, expected) == 0
    half = model.forward(case.src.astype(np.float16), src_key_padding_mask=case.key_padding_mask)
    assert half.shape == expected.shape and np.isfinite(half).all()


def test_properties_and_help():
    case = CASES[0]
    model = kiln.TransformerEncoder.from_dir(case.dir, backend="ndarray")
    assert model.d_model == case.src.shape[2]
    assert model.precision == "f32"
    assert model.path.name == case.name
    assert "TransformerEncoder" in repr(model)
    assert "src_key_padding_mask" in kiln.TransformerEncoder.forward.__doc__
    assert "backend" in kiln.TransformerEncoder.from_dir.__doc__
