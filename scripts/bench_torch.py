#!/usr/bin/env python3
"""Time PyTorch's nn.TransformerEncoder with the shapes of `kiln bench`, and print the same fields.

    python scripts/bench_torch.py [--shape base|small] [--threads 2] [--repeat 10] [--device cpu|cuda]
        [--layers N --batch B --seq S] [--json]

Eager mode, eval, torch.inference_mode(), batch_first, post-norm GELU, dropout 0, one warm-up,
then the median of --repeat timed runs (torch.cuda.synchronize() before each clock read on CUDA).
Also times the raw n x n x n matmul, the padded batch (lengths spread uniformly in [S/4, S], run
padded, and through the nested-tensor fast path), and the process's peak RSS.
"""
import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn

SHAPES = {
    "base": dict(d_model=768, nhead=12, dim_feedforward=3072, num_layers=4, batch=8, seq=128),
    "small": dict(d_model=256, nhead=4, dim_feedforward=1024, num_layers=2, batch=8, seq=64),
}


def flops_per_token(s):
    e, f, seq = s["d_model"], s["dim_feedforward"], s["seq"]
    return s["num_layers"] * (2 * (4 * e * e + 2 * e * f) + 4 * seq * e)


def timed(fn, repeat, device):
    fn()
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="base", choices=sorted(SHAPES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--layers", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--seq", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    s = dict(SHAPES[a.shape])
    for k, v in (("num_layers", a.layers), ("batch", a.batch), ("seq", a.seq)):
        if v:
            s[k] = v
    dev = a.device
    layer = nn.TransformerEncoderLayer(s["d_model"], s["nhead"], s["dim_feedforward"], dropout=0.0,
                                       activation="gelu", batch_first=True)
    model = nn.TransformerEncoder(layer, s["num_layers"], enable_nested_tensor=True).eval().to(dev)
    x = torch.randn(s["batch"], s["seq"], s["d_model"], device=dev)
    tokens = s["batch"] * s["seq"]
    flops = flops_per_token(s) * tokens

    n = 1024
    ma, mb = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    with torch.inference_mode():
        mm = timed(lambda: ma @ mb, max(a.repeat, 5), dev)
        matmul_gflops = 2 * n ** 3 / mm / 1e9
        t = timed(lambda: model(x), a.repeat, dev)
        gen = torch.Generator().manual_seed(a.seed)
        lengths = torch.randint(max(s["seq"] // 4, 1), s["seq"] + 1, (s["batch"],), generator=gen)
        pad = torch.arange(s["seq"])[None, :].to(dev) >= lengths[:, None].to(dev)
        real = int(lengths.sum())
        # Nested tensors (PyTorch's padding skip) run in eval with a bool key padding mask.
        t_nested = timed(lambda: model(x, src_key_padding_mask=pad), a.repeat, dev)
        torch.backends.mha.set_fastpath_enabled(False)
        t_padded = timed(lambda: model(x, src_key_padding_mask=pad), a.repeat, dev)
        torch.backends.mha.set_fastpath_enabled(True)
    gflops = flops / t / 1e9
    report = {
        "backend": f"pytorch-{dev}",
        "torch_version": torch.__version__,
        "threads": a.threads,
        "shape": {"name": a.shape, **s},
        "repeat": a.repeat,
        "matmul_n": n,
        "matmul_gflops": matmul_gflops,
        "pytorch": {
            "median_seconds": t,
            "tokens_per_second": tokens / t,
            "gflops_per_second": gflops,
            "roofline_fraction": gflops / matmul_gflops,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        },
        "padded": {
            "lengths": lengths.tolist(),
            "real_tokens": real,
            "padded_real_tokens_per_second": real / t_padded,
            "nested_real_tokens_per_second": real / t_nested,
            "speedup": t_padded / t_nested,
        },
    }
    if a.json:
        print(json.dumps(report))
    else:
        r = report["pytorch"]
        print(f"PyTorch {torch.__version__} {dev}, {a.threads} threads, shape {a.shape} {s}")
        print(f"raw matmul {n}^3: {matmul_gflops:.1f} GFLOP/s")
        print(f"encoder: {r['tokens_per_second']:.0f} tokens/s, {t*1e3:.2f} ms, {gflops:.1f} GFLOP/s, "
              f"{100*r['roofline_fraction']:.0f}% of matmul, peak RSS {r['peak_rss_bytes']/2**20:.0f} MiB")
        pd = report["padded"]
        print(f"padded batch {pd['lengths']}: padded {pd['padded_real_tokens_per_second']:.0f} real tok/s, "
              f"nested {pd['nested_real_tokens_per_second']:.0f} real tok/s ({pd['speedup']:.2f}x)")


if __name__ == "__main__":
    main()
