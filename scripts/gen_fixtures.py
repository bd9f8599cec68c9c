#!/usr/bin/env python3
"""Write PyTorch reference cases for kiln's parity tests into tests/fixtures/encoder/.

Each case folder holds config.json + model.safetensors (written by export_torch.export_encoder)
and case.safetensors with:
  src                 the input, in the model's layout
  expected            nn.TransformerEncoder's output (eval mode)
  src_mask_bool | src_mask_float        optional, [S,S] or [B*nhead,S,S] (bool stored as u8)
  key_padding_mask    optional, u8 [B,S], 1 = padding
  valid               u8 [B,S], 1 where the output is compared (not padding)
  attn.{i}            layer i's attention weights [B,H,S,S] (need_weights=True,
                      average_attn_weights=False)
and meta.json: {"is_causal": bool, "description": str}.

PyTorch's fast path (nested tensors, fused kernels) is disabled so that the reference is the
documented math path; padded positions are excluded from comparison either way.

Run: python scripts/gen_fixtures.py   (needs torch, numpy, safetensors; CI does not run it)
"""
import json
import os
import shutil

import torch
from torch import nn
from safetensors.torch import save_file

from export_torch import export_encoder

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "encoder")


def make_encoder(d_model=16, nhead=4, dff=32, layers=2, activation="relu", norm_first=False,
                 batch_first=False, bias=True, final_norm=False, eps=1e-5):
    layer = nn.TransformerEncoderLayer(d_model, nhead, dff, dropout=0.1, activation=activation,
                                       layer_norm_eps=eps, batch_first=batch_first,
                                       norm_first=norm_first, bias=bias)
    norm = nn.LayerNorm(d_model, eps=eps) if final_norm else None
    enc = nn.TransformerEncoder(layer, layers, norm=norm, enable_nested_tensor=False)
    # Layers start as deep copies; make them differ, and give LayerNorms non-trivial values.
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc.eval()


def attention_maps(enc, src, mask, kpm, is_causal):
    """Per-layer attention weights, from each layer's own MultiheadAttention."""
    maps = []
    x = src
    with torch.no_grad():
        for layer in enc.layers:
            sa_in = layer.norm1(x) if layer.norm_first else x
            attn_mask = mask
            if is_causal and attn_mask is None:
                seq = src.shape[1] if layer.self_attn.batch_first else src.shape[0]
                attn_mask = nn.Transformer.generate_square_subsequent_mask(seq)
            _, w = layer.self_attn(sa_in, sa_in, sa_in, attn_mask=attn_mask, key_padding_mask=kpm,
                                   need_weights=True, average_attn_weights=False)
            maps.append(w.contiguous())
            x = layer(x, src_mask=mask, src_key_padding_mask=kpm, is_causal=is_causal)
    return maps


def write_case(name, enc, *, batch=3, seq=7, mask=None, kpm_lengths=None, is_causal=False,
               kpm_float=False, description=""):
    d_model = enc.layers[0].self_attn.embed_dim
    batch_first = enc.layers[0].self_attn.batch_first
    shape = (batch, seq, d_model) if batch_first else (seq, batch, d_model)
    src = torch.randn(*shape)
    kpm = None
    valid = torch.ones(batch, seq, dtype=torch.bool)
    if kpm_lengths is not None:
        kpm = torch.arange(seq)[None, :] >= torch.tensor(kpm_lengths)[:, None]
        valid = ~kpm
    kpm_arg = kpm
    if kpm is not None and kpm_float:
        kpm_arg = torch.zeros(batch, seq).masked_fill(kpm, float("-inf"))
    if is_causal and mask is None:
        mask = nn.Transformer.generate_square_subsequent_mask(seq)
    with torch.no_grad():
        out = enc(src, mask=mask, src_key_padding_mask=kpm_arg, is_causal=is_causal)
    assert torch.isfinite(out).all(), name
    maps = attention_maps(enc, src, mask, kpm_arg, is_causal)

    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    export_encoder(enc, folder)
    tensors = {"src": src, "expected": out.contiguous(), "valid": valid.to(torch.uint8)}
    if mask is not None:
        if mask.dtype == torch.bool:
            tensors["src_mask_bool"] = mask.to(torch.uint8)
        else:
            tensors["src_mask_float"] = mask.float()
    if kpm is not None:
        if kpm_float:
            tensors["key_padding_mask_float"] = kpm_arg.float()
        else:
            tensors["key_padding_mask"] = kpm.to(torch.uint8)
    for i, w in enumerate(maps):
        tensors[f"attn.{i}"] = w
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(folder, "case.safetensors"))
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump({"is_causal": is_causal, "description": description,
                   "torch_version": torch.__version__}, f, indent=2)


def random_bool_mask(*shape):
    m = torch.rand(*shape) < 0.3
    m[..., torch.arange(shape[-1]), torch.arange(shape[-1])] = False  # never mask a whole row
    return m


def main():
    torch.manual_seed(0)
    torch.backends.mha.set_fastpath_enabled(False)
    shutil.rmtree(ROOT, ignore_errors=True)
    S = 7
    write_case("post_relu", make_encoder(), description="post-norm, relu, [S,B,E], no mask")
    write_case("pre_gelu_batch_first_final_norm",
               make_encoder(activation="gelu", norm_first=True, batch_first=True, final_norm=True),
               description="pre-norm, gelu, batch_first, final LayerNorm")
    write_case("bool_mask", make_encoder(), mask=random_bool_mask(S, S),
               description="2-D bool src_mask")
    fm = torch.randn(S, S)
    fm[torch.rand(S, S) < 0.25] = float("-inf")
    fm[torch.arange(S), torch.arange(S)] = 0.5
    write_case("float_mask", make_encoder(activation="gelu"), mask=fm,
               description="2-D float src_mask with -inf entries")
    write_case("per_head_bool_mask", make_encoder(batch_first=True), mask=random_bool_mask(3 * 4, S, S),
               description="3-D bool src_mask [B*nhead,S,S], batch_first")
    write_case("per_head_float_mask", make_encoder(norm_first=True), mask=torch.randn(3 * 4, S, S),
               description="3-D float src_mask [B*nhead,S,S], pre-norm")
    write_case("causal", make_encoder(batch_first=True, activation="gelu"), is_causal=True,
               description="is_causal with the square subsequent mask")
    write_case("causal_key_padding", make_encoder(), is_causal=True, kpm_lengths=[7, 4, 1],
               description="is_causal plus key padding")
    write_case("key_padding", make_encoder(norm_first=True, final_norm=True), kpm_lengths=[7, 5, 2],
               description="bool key padding, pre-norm, final norm")
    write_case("key_padding_float_batch_first", make_encoder(batch_first=True), kpm_lengths=[3, 7, 6],
               kpm_float=True, description="float key padding (-inf), batch_first")
    write_case("mask_and_padding", make_encoder(batch_first=True, activation="gelu"),
               mask=random_bool_mask(S, S), kpm_lengths=[6, 7, 4],
               description="bool src_mask with bool key padding")
    write_case("no_bias", make_encoder(bias=False, final_norm=True), kpm_lengths=[7, 3, 5],
               description="bias=False everywhere (LayerNorms too), final norm")
    write_case("deep_odd", make_encoder(d_model=24, nhead=6, dff=40, layers=4, activation="gelu",
                                        final_norm=True, eps=1e-6),
               batch=2, seq=11, description="4 layers, 6 heads, S=11, eps 1e-6, final norm")
    write_case("single_token", make_encoder(batch_first=True), batch=2, seq=1,
               description="a one-token sequence")
    print("wrote", sorted(os.listdir(ROOT)))


if __name__ == "__main__":
    main()
