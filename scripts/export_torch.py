#!/usr/bin/env python3
"""Export a torch.nn.TransformerEncoder to kiln's format: config.json + model.safetensors.

    from export_torch import export_encoder
    export_encoder(my_encoder, "out_dir")

or, for a model saved whole with torch.save:

    python scripts/export_torch.py model.pt out_dir

The safetensors keys are exactly the module's state_dict() names (layers.0.self_attn.in_proj_weight,
..., norm.weight), stored as f32. config.json uses PyTorch's argument names.
"""
import json
import os
import sys

import torch
from torch import nn
from safetensors.torch import save_file


def _activation_name(layer: nn.TransformerEncoderLayer) -> str:
    act = layer.activation
    if isinstance(act, str):
        name = act
    elif act is torch.nn.functional.relu or isinstance(act, nn.ReLU):
        name = "relu"
    elif act is torch.nn.functional.gelu or isinstance(act, nn.GELU):
        if isinstance(act, nn.GELU) and act.approximate != "none":
            raise ValueError("kiln supports exact GELU only (approximate='none')")
        name = "gelu"
    else:
        raise ValueError(f"unsupported activation {act!r}: kiln supports relu and gelu")
    return name


def layer_config(layer: nn.TransformerEncoderLayer) -> dict:
    attn = layer.self_attn
    if not attn._qkv_same_embed_dim:
        raise ValueError("kiln supports self-attention with kdim == vdim == embed_dim only")
    return {
        "d_model": attn.embed_dim,
        "nhead": attn.num_heads,
        "dim_feedforward": layer.linear1.out_features,
        "dropout": float(layer.dropout.p),
        "activation": _activation_name(layer),
        "layer_norm_eps": float(layer.norm1.eps),
        "batch_first": bool(attn.batch_first),
        "norm_first": bool(layer.norm_first),
        "bias": layer.linear1.bias is not None,
    }


def encoder_config(encoder: nn.TransformerEncoder) -> dict:
    configs = [layer_config(layer) for layer in encoder.layers]
    if any(c != configs[0] for c in configs):
        raise ValueError("all layers must share one configuration")
    config = dict(configs[0])
    config["num_layers"] = len(encoder.layers)
    config["final_norm"] = encoder.norm is not None
    if encoder.norm is not None:
        if not isinstance(encoder.norm, nn.LayerNorm):
            raise ValueError("the final norm must be an nn.LayerNorm")
        config["final_norm_eps"] = float(encoder.norm.eps)
        config["final_norm_bias"] = encoder.norm.bias is not None
    return config


def export_encoder(encoder: nn.TransformerEncoder, out_dir: str) -> dict:
    """Write config.json and model.safetensors for `encoder` into `out_dir`; return the config."""
    os.makedirs(out_dir, exist_ok=True)
    config = encoder_config(encoder)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, os.path.join(out_dir, "model.safetensors"))
    return config


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model = torch.load(sys.argv[1], weights_only=False)
    if not isinstance(model, nn.TransformerEncoder):
        sys.exit(f"{sys.argv[1]} holds a {type(model).__name__}, not an nn.TransformerEncoder")
    export_encoder(model, sys.argv[2])
    print(f"wrote {sys.argv[2]}/config.json and model.safetensors")
