#!/usr/bin/env python3
"""Times onnxruntime (CPU) on the same texts, threads and batch size as `kiln embed`.

  python scripts/bench_onnxruntime.py [--model DIR] [--input crates/kiln-bench/data/sentences_1000.txt]
      [--variant fp32,int8] [--threads 2] [--batch-size 32] [--repeat 3] [--limit N]
      [--output /tmp/ort.npy] [--compare REF.npy] [--reexport]

The text model is exported once with torch.onnx.export (TorchScript exporter, dynamo=False,
opset 17; inputs input_ids, attention_mask, token_type_ids with dynamic batch and sequence axes;
output last_hidden_state) into .cache/onnx/<model dir name>/ and reused (--reexport redoes it and
everything derived from it). Variants (--variant, a comma list; default fp32,int8):
  fp32        the exported graph, as onnxruntime's own graph optimiser (ORT_ENABLE_ALL) leaves it
  fp32-opt    fp32 through onnxruntime.transformers.optimizer (model_type bert): fused
              EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu
  int8        quantize_dynamic(fp32-opt, weight_type=QInt8, per_channel=True): onnxruntime int8,
              per channel, after its transformer optimizer
  int8-noopt  quantize_dynamic(fp32, weight_type=QInt8, per_channel=True), no transformer optimizer
The work is that of `kiln embed`: texts (one per line) are tokenised with the `tokenizers` package
from tokenizer.json (truncation to max_seq_length from sentence_bert_config.json, no fixed
padding), sorted by token count (longest first, stable), run in batches of --batch-size padded to
their longest text, mean-pooled over real tokens and L2-normalised; rows are in input order.
Only the embedding loop (tokenise + run + pool) is timed: the median of --repeat runs after one
warm-up run. Prints one JSON object per line, one per variant.

Compare with (same file, same batch size; the median of a few runs):
  target/release/kiln embed --model DIR --input-file FILE --output /tmp/kiln.npy --json
  target/release/kiln embed --model DIR --input-file FILE --output /tmp/kiln-int8.npy --json --precision int8
and the embeddings themselves with --compare /tmp/kiln.npy (or sentence-transformers' output).
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# variant -> (file name in the cache folder, what it is derived from, how)
VARIANTS = {
    "fp32": ("model.onnx", None, "export"),
    "fp32-opt": ("model.opt.onnx", "fp32", "optimize"),
    "int8": ("model.opt.int8pc.onnx", "fp32-opt", "quantize"),
    "int8-noopt": ("model.int8pc.onnx", "fp32", "quantize"),
}


def export(model_dir: Path, path: Path, opset: int):
    import torch
    from transformers import AutoModel

    class Wrapper(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager",
                                     local_files_only=True).eval()
    # Batch 2, 8 tokens, the second row padded; the axes are made dynamic below.
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 1012, 102],
                        [101, 7592, 102, 0, 0, 0, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with torch.no_grad():
        # The TorchScript exporter gives a plain single-file graph that the transformer
        # optimizer and quantize_dynamic handle well.
        torch.onnx.export(Wrapper(bert), (ids, mask, types), str(path), input_names=list(INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    import onnx

    onnx.checker.check_model(str(path))


def optimize(src: Path, dst: Path, model_dir: Path):
    from onnxruntime.transformers import optimizer

    cfg = json.loads((model_dir / "config.json").read_text())
    m = optimizer.optimize_model(str(src), model_type="bert", num_heads=cfg["num_attention_heads"],
                                 hidden_size=cfg["hidden_size"], opt_level=1)
    m.save_model_to_file(str(dst))


def quantize(src: Path, dst: Path):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # DefaultTensorType: shape inference cannot type the outputs of the fused contrib ops.
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def prepare(variant: str, cache: Path, model_dir: Path, opset: int) -> Path:
    """Makes the variant's graph (and what it derives from) unless it is there; returns its path."""
    name, base, how = VARIANTS[variant]
    path = cache / name
    if path.exists():
        return path
    src = prepare(base, cache, model_dir, opset) if base else None
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.onnx")  # an interrupted run leaves no half file
    tmp.unlink(missing_ok=True)
    print(f"[bench_onnxruntime] {how}: {path}", flush=True, file=sys.stderr)
    if how == "export":
        export(model_dir, tmp, opset)
    elif how == "optimize":
        optimize(src, tmp, model_dir)
    else:
        quantize(src, tmp)
    tmp.replace(path)
    return path


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def load_tokenizer(model_dir: Path, max_len: int):
    """tokenizer.json, truncating to max_len (special tokens included), without its fixed padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    tok.no_padding()
    return tok


def read_lines(path: Path, limit=None):
    """One text per line (\\n or \\r\\n), a final newline ending the last one: like `kiln embed`."""
    text = path.read_bytes().decode("utf-8")
    if text.endswith("\n"):
        text = text[:-1]
    lines = [l[:-1] if l.endswith("\r") else l for l in text.split("\n")]
    return lines[:limit] if limit is not None else lines


def embed(sess, tok, texts, batch_size):
    encs = tok.encode_batch(texts, add_special_tokens=True)
    order = sorted(range(len(texts)), key=lambda i: -len(encs[i].ids))  # stable
    out = None
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        n = max(len(encs[i].ids) for i in chunk)
        ids = np.zeros((len(chunk), n), dtype=np.int64)
        types = np.zeros((len(chunk), n), dtype=np.int64)
        mask = np.zeros((len(chunk), n), dtype=np.int64)
        for r, i in enumerate(chunk):
            e = encs[i]
            k = len(e.ids)
            ids[r, :k] = e.ids
            types[r, :k] = e.type_ids
            mask[r, :k] = 1
        (hidden,) = sess.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": types})
        m = mask[:, :, None].astype(np.float32)
        mean = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        mean /= np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
        if out is None:
            out = np.empty((len(texts), mean.shape[1]), dtype=np.float32)
        out[chunk] = mean
    return out


def cosines(emb, ref):
    if emb.shape != ref.shape:
        raise SystemExit(f"--compare: shape {ref.shape} differs from the embeddings' {emb.shape}")
    a = emb / np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
    b = ref / np.clip(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12, None)
    cos = (a * b).sum(axis=1)
    return float(cos.min()), float(cos.mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / ".cache/models/all-MiniLM-L6-v2",
                   help="sentence-transformers directory")
    p.add_argument("--input", "--input-file", dest="input", type=Path,
                   default=ROOT / "crates/kiln-bench/data/sentences_1000.txt", help="one text per line")
    p.add_argument("--limit", type=int, default=None, help="only the first N lines")
    p.add_argument("--variant", default="fp32,int8",
                   help=f"comma list of {', '.join(VARIANTS)} (default fp32,int8)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op 1, sequential)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up; the median is reported")
    p.add_argument("--max-seq-length", type=int, default=None,
                   help="default: sentence_bert_config.json's max_seq_length")
    p.add_argument("--output", type=Path, default=None,
                   help="write the first variant's f32 .npy [N, dim] here; variant V's go to "
                        "OUTPUT-STEM-V.npy beside it")
    p.add_argument("--compare", type=Path, default=None,
                   help="reference .npy [N, dim]: report each variant's min/mean row cosine to it")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where the ONNX graphs go (default .cache/onnx/<model dir name>/)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--reexport", action="store_true", help="export, optimise and quantise again")
    args = p.parse_args()

    variants = [v.strip() for v in args.variant.split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        p.error(f"--variant {args.variant}: expected a comma list of {', '.join(VARIANTS)}")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")

    ref = np.load(args.compare).astype(np.float32) if args.compare else None  # fail before exporting

    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)  # the export: keep it within the same threads
    cache = args.cache_dir or ROOT / ".cache/onnx" / args.model.resolve().name
    if args.reexport:
        for name, _, _ in VARIANTS.values():
            (cache / name).unlink(missing_ok=True)
    paths = {v: prepare(v, cache, args.model, args.opset) for v in variants}

    max_len = args.max_seq_length or int(
        json.loads((args.model / "sentence_bert_config.json").read_text())["max_seq_length"])
    tok = load_tokenizer(args.model, max_len)
    texts = read_lines(args.input, args.limit)

    for k, v in enumerate(variants):
        sess = session(paths[v], args.threads)
        emb = embed(sess, tok, texts, args.batch_size)  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            emb = embed(sess, tok, texts, args.batch_size)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        out = args.output
        if out is not None:
            if k > 0:
                out = out.with_name(f"{out.stem}-{v}.npy")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, np.ascontiguousarray(emb, dtype=np.float32))
        rec = {
            "impl": f"onnxruntime-{v}",
            "texts": len(texts),
            "seconds": seconds,
            "all_seconds": times,
            "texts_per_second": len(texts) / seconds,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "max_seq_length": max_len,
            "onnxruntime": ort.__version__,
            "model_file": str(paths[v]),
        }
        if ref is not None:
            rec["cos_min"], rec["cos_mean"] = cosines(emb, ref)
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
