#!/usr/bin/env python3
"""Helpers of scripts/device_check.sh. The kiln parts need only Python's standard library (a
device image may have no numpy); the peer parts (PyTorch CUDA, sentence-transformers) run
when the image has those packages and report why not otherwise.

    device_check.py fixture CASE_DIR OUT_DIR        # src/masks as .npy, prints kiln forward's args
    device_check.py compare CASE_DIR OUTPUT.npy     # max-abs error at real tokens, as JSON
    device_check.py random-bert MODEL_DIR           # model.safetensors of config.json's shape
    device_check.py f16 IN.safetensors OUT.safetensors   # F32 tensors stored as F16 (to carry)
    device_check.py corpus IN.txt N OUT.txt         # N lines, IN's lines repeated
    device_check.py torch --layers L --batch B --seq S [--repeat R]
    device_check.py st MODEL_DIR CORPUS [--batch-size 32] [--kiln-output EMB.npy]
                                                    # with --kiln-output: cosine of kiln's rows to its own
    device_check.py report RESULTS.jsonl            # one JSON object + one table with ratios
"""
import argparse
import array
import json
import os
import struct
import sys
import time

DTYPES = {"F32": ("f", 4), "U8": ("B", 1), "I64": ("q", 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        code, _ = DTYPES[meta["dtype"]]
        start, end = meta["data_offsets"]
        values = array.array(code)
        values.frombytes(data[8 + n + start:8 + n + end])
        out[key] = (meta["dtype"], meta["shape"], values)
    return out


def write_safetensors(path, tensors):
    """`tensors`: name -> (dtype, shape, raw little-endian bytes), in file order."""
    header, offset = {}, 0
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, raw in tensors.values():
            f.write(raw)


def to_f16(src, dst):
    """`src`'s F32 tensors stored as F16 (half the bytes to carry), other dtypes as they are."""
    out = {}
    for key, (dtype, shape, values) in read_safetensors(src).items():
        if dtype == "F32":
            out[key] = ("F16", shape, struct.pack(f"<{len(values)}e", *values))
        else:
            out[key] = (dtype, shape, values.tobytes())
    write_safetensors(dst, out)


def write_npy(path, descr, shape, payload):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join(f"{d}, " for d in shape))
    pad = 64 - (10 + len(header) + 1) % 64
    header += " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload)


def read_npy_f32(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<H", data[8:10])
    header = data[10:10 + hlen].decode()
    assert "'<f4'" in header, header
    shape = tuple(int(d) for d in header.split("(")[1].split(")")[0].split(",") if d.strip())
    values = array.array("f")
    values.frombytes(data[10 + hlen:])
    return shape, values


def fixture(case, out):
    tensors = read_safetensors(os.path.join(case, "case.safetensors"))
    meta = json.load(open(os.path.join(case, "meta.json")))
    args = ["--config", os.path.join(case, "config.json"),
            "--weights", os.path.join(case, "model.safetensors")]
    for key, flag in (("src", "--input"), ("src_mask_bool", "--mask"), ("src_mask_float", "--mask"),
                      ("key_padding_mask", "--key-padding-mask"),
                      ("key_padding_mask_float", "--key-padding-mask")):
        if key in tensors:
            dtype, shape, values = tensors[key]
            path = os.path.join(out, key + ".npy")
            write_npy(path, "|b1" if dtype == "U8" else "<f4", shape, values.tobytes())
            args += [flag, path]
    if meta.get("is_causal"):
        args.append("--causal")
    print(" ".join(args))


def compare(case, output):
    tensors = read_safetensors(os.path.join(case, "case.safetensors"))
    batch_first = json.load(open(os.path.join(case, "config.json"))).get("batch_first", False)
    _, shape, expected = tensors["expected"]
    _, (batch, seq), valid = tensors["valid"]
    got_shape, got = read_npy_f32(output)
    if tuple(got_shape) != tuple(shape):
        print(json.dumps({"case": os.path.basename(case.rstrip("/")), "error":
                          f"output shape {got_shape}, expected {shape}"}))
        return
    e = shape[-1]
    worst = 0.0
    for b in range(batch):
        for s in range(seq):
            if not valid[b * seq + s]:
                continue
            row = (b * seq + s) if batch_first else (s * batch + b)
            for i in range(row * e, row * e + e):
                worst = max(worst, abs(got[i] - expected[i]))
    print(json.dumps({"case": os.path.basename(case.rstrip("/")), "max_abs": worst}))


def random_bert(model_dir):
    """BERT weights of config.json's sizes, deterministic values in [-0.05, 0.05] (speed only)."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    h, ff, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    shapes = {
        "embeddings.word_embeddings.weight": [c["vocab_size"], h],
        "embeddings.position_embeddings.weight": [c["max_position_embeddings"], h],
        "embeddings.token_type_embeddings.weight": [c.get("type_vocab_size", 2), h],
        "embeddings.LayerNorm.weight": [h], "embeddings.LayerNorm.bias": [h],
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[p + name + ".weight"] = [h, h]
            shapes[p + name + ".bias"] = [h]
        shapes[p + "intermediate.dense.weight"] = [ff, h]
        shapes[p + "intermediate.dense.bias"] = [ff]
        shapes[p + "output.dense.weight"] = [h, ff]
        shapes[p + "output.dense.bias"] = [h]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + norm + ".weight"] = [h]
            shapes[p + norm + ".bias"] = [h]
    shapes["pooler.dense.weight"] = [h, h]
    shapes["pooler.dense.bias"] = [h]
    pattern = array.array("f", [((i * 7919) % 1001 - 500) / 10000.0 for i in range(1001)]).tobytes()
    tensors = {}
    for key, shape in shapes.items():
        count = 1
        for d in shape:
            count *= d
        nbytes = 4 * count
        if key.endswith("LayerNorm.weight"):
            blob = array.array("f", [1.0]).tobytes() * count
        else:
            blob = (pattern * (nbytes // len(pattern) + 1))[:nbytes]
        tensors[key] = ("F32", shape, blob)
    write_safetensors(os.path.join(model_dir, "model.safetensors"), tensors)


def corpus(src, n, out):
    lines = [l for l in open(src, encoding="utf-8").read().splitlines() if l.strip()]
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(lines[i % len(lines)] + "\n")


def torch_bench(a):
    try:
        import torch
        from torch import nn
    except ImportError as e:
        print(json.dumps({"impl": "pytorch", "name": "pytorch" + a.suffix, "skipped": f"no torch: {e}"}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"impl": "pytorch", "name": "pytorch" + a.suffix,
                          "skipped": "torch has no CUDA device"}))
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu",
                                       batch_first=True)
    model = nn.TransformerEncoder(layer, a.layers, enable_nested_tensor=False).eval().cuda()
    tokens = a.batch * a.seq
    for dtype, name in ((torch.float32, "pytorch-cuda-f32"), (torch.float16, "pytorch-cuda-fp16")):
        m = model.to(dtype)
        x = torch.randn(a.batch, a.seq, 768, device="cuda", dtype=dtype)
        times = []
        with torch.inference_mode():
            m(x)
            for _ in range(a.repeat):
                torch.cuda.synchronize()
                start = time.perf_counter()
                m(x)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        times.sort()
        t = times[len(times) // 2]
        print(json.dumps({"impl": name, "name": name + a.suffix, "layers": a.layers, "batch": a.batch, "seq": a.seq,
                          "tokens_per_second": tokens / t, "device": torch.cuda.get_device_name()}))


def st_bench(a):
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        print(json.dumps({"impl": "sentence-transformers-cuda", "skipped": f"not installed: {e}"}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"impl": "sentence-transformers-cuda", "skipped": "no CUDA device"}))
        return
    lines = open(a.corpus, encoding="utf-8").read().splitlines()
    model = SentenceTransformer(a.model, device="cuda")
    model.encode(lines[:256], batch_size=a.batch_size)
    torch.cuda.synchronize()
    start = time.perf_counter()
    ours = model.encode(lines, batch_size=a.batch_size, convert_to_tensor=True)
    torch.cuda.synchronize()
    t = time.perf_counter() - start
    row = {"impl": "sentence-transformers-cuda", "name": "sentence-transformers-cuda",
           "n": len(lines), "sentences_per_second": len(lines) / t}
    if a.kiln_output:
        # kiln's rows against sentence-transformers' on the same GPU, in f64.
        shape, values = read_npy_f32(a.kiln_output)
        kiln = torch.frombuffer(values, dtype=torch.float32).view(*shape)
        kiln, ours = kiln.double().cuda(), ours.double()
        cos = torch.nn.functional.cosine_similarity(kiln, ours, dim=1)
        row.update(kiln_cosine_min=cos.min().item(), kiln_cosine_mean=cos.mean().item())
    print(json.dumps(row))


def report(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    by = {r.get("name"): r for r in rows if "name" in r}

    def ratio(a, b, field):
        x, y = by.get(a, {}).get(field), by.get(b, {}).get(field)
        return round(x / y, 3) if x and y else None

    summary = {
        "rows": rows,
        "ratios": {
            "kiln_wgpu_base_b64_vs_pytorch_cuda_f32": ratio("kiln-wgpu-base-b64", "pytorch-cuda-f32-base-b64", "tokens_per_second"),
            "kiln_wgpu_base_b64_vs_pytorch_cuda_fp16": ratio("kiln-wgpu-base-b64", "pytorch-cuda-fp16-base-b64", "tokens_per_second"),
            "kiln_wgpu_large_vs_pytorch_cuda_f32": ratio("kiln-wgpu-large", "pytorch-cuda-f32-large", "tokens_per_second"),
            "kiln_embed_wgpu_vs_sentence_transformers_cuda": ratio("kiln-embed-wgpu", "sentence-transformers-cuda", "sentences_per_second"),
        },
    }
    print(json.dumps(summary))
    print("\n| step | figure | status |\n| --- | ---: | --- |", file=sys.stderr)
    for r in rows:
        figure = r.get("tokens_per_second") or r.get("sentences_per_second") or r.get("max_abs")
        unit = ("tok/s" if "tokens_per_second" in r else "sent/s" if "sentences_per_second" in r
                else "max-abs" if "max_abs" in r else "")
        shown = f"{figure:,.1f} {unit}" if unit in ("tok/s", "sent/s") else (
            f"{figure:.2e} {unit}" if figure is not None else "")
        print(f"| {r.get('name', r.get('impl', r.get('case', '?')))} | {shown} | "
              f"{r.get('status', r.get('skipped', r.get('error', 'ok')))} |", file=sys.stderr)
    for r in rows:
        if "kiln_cosine_min" in r:
            print(f"| kiln-embed-wgpu cosine to {r['name']}, min / mean | "
                  f"{r['kiln_cosine_min']:.7f} / {r['kiln_cosine_mean']:.7f} | parity |", file=sys.stderr)
    for k, v in summary["ratios"].items():
        print(f"| {k} | {v if v is not None else 'n/a'} | ratio |", file=sys.stderr)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixture"); f.add_argument("case"); f.add_argument("out")
    c = sub.add_parser("compare"); c.add_argument("case"); c.add_argument("output")
    r = sub.add_parser("random-bert"); r.add_argument("model")
    h = sub.add_parser("f16"); h.add_argument("src"); h.add_argument("dst")
    k = sub.add_parser("corpus"); k.add_argument("src"); k.add_argument("n", type=int); k.add_argument("out")
    t = sub.add_parser("torch")
    for name in ("layers", "batch", "seq"):
        t.add_argument("--" + name, type=int, required=True)
    t.add_argument("--repeat", type=int, default=10)
    t.add_argument("--suffix", default="", help="appended to each row's name")
    s = sub.add_parser("st"); s.add_argument("model"); s.add_argument("corpus")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--kiln-output", help="kiln embed's .npy of the same corpus: adds the cosines")
    o = sub.add_parser("report"); o.add_argument("results")
    a = p.parse_args()
    if a.cmd == "fixture":
        fixture(a.case, a.out)
    elif a.cmd == "compare":
        compare(a.case, a.output)
    elif a.cmd == "random-bert":
        random_bert(a.model)
    elif a.cmd == "f16":
        to_f16(a.src, a.dst)
    elif a.cmd == "corpus":
        corpus(a.src, a.n, a.out)
    elif a.cmd == "torch":
        torch_bench(a)
    elif a.cmd == "st":
        st_bench(a)
    else:
        report(a.results)


if __name__ == "__main__":
    main()
