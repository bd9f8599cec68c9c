#!/usr/bin/env bash
# kiln's CPU speed against its peers, side by side in one run (the tables of docs/benchmarks.md,
# "CPU kernels"): all-MiniLM-L6-v2 on the 1,000-sentence corpus (sentence-transformers,
# onnxruntime fp32 and int8, kiln default f32, then the same with kiln --precision int8, and
# --precision bf16 where the CPU has avx512_bf16), and the encoder "base" (PyTorch eager, kiln
# f32, int8 and bf16, alternating, then the reduced precisions' error against f32); where the CPU
# has AMX, kiln's int8 and bf16 also without it.
#
#   cargo build --release -p kiln-cli && bash scripts/fetch_minilm.sh && ../shared/peers/setup.sh
#   bash scripts/bench_cpu_peers.sh [ROUNDS]        # default 3
#
# Prints the CPU model and flags first: figures from different machines do not compare.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
PEERS="${PEERS:-../shared/peers}"
PY="${PY:-${PEERS_HOME:-$HOME/.cache/kiln-peers}/venv/bin/python}"
KILN=target/release/kiln
[ -x "$KILN" ] || { echo "build first: cargo build --release -p kiln-cli" >&2; exit 2; }
date -u
grep -m1 'model name' /proc/cpuinfo || true
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512|vnni|amx|bf16|fma|avx2' | tr '\n' ' ' || true
echo

echo "=== all-MiniLM-L6-v2: kiln default (f32) vs peers"
"$PEERS/run_text_peers.sh" --impls st,ort-fp32,ort-int8pc-opt,kiln --rounds "$ROUNDS"
echo "=== all-MiniLM-L6-v2: kiln --precision int8 vs peers"
KILN_ARGS="--precision int8" "$PEERS/run_text_peers.sh" --impls st,ort-fp32,ort-int8pc-opt,kiln --rounds "$ROUNDS"
PRECISIONS="f32 int8"
if grep -qw avx512_bf16 /proc/cpuinfo; then
  PRECISIONS="$PRECISIONS bf16"
  echo "=== all-MiniLM-L6-v2: kiln --precision bf16 vs peers"
  KILN_ARGS="--precision bf16" "$PEERS/run_text_peers.sh" --impls st,ort-fp32,ort-int8pc-opt,kiln --rounds "$ROUNDS"
fi

echo "=== encoder \"base\" (d768, 12 heads, FFN 3072, GELU, 4 layers, batch 8 x 128): PyTorch vs kiln $PRECISIONS"
BASE="$(mktemp -d)"
trap 'rm -rf "$BASE"' EXIT
cat > "$BASE/config.json" <<'JSON'
{"d_model": 768, "nhead": 12, "dim_feedforward": 3072, "dropout": 0.0, "activation": "gelu",
 "layer_norm_eps": 1e-05, "batch_first": true, "norm_first": false, "bias": true, "num_layers": 4}
JSON
"$KILN" init --config "$BASE/config.json" --out "$BASE/model.safetensors" --seed 1 >/dev/null
# Where the CPU has AMX, the int8 and bf16 rows run twice: with AMX (kiln's pick) and with the
# AVX-512 kernels only (KILN_DISABLE_CPU_FEATURES=amx), alternating in the same rounds.
VARIANTS="$PRECISIONS"
if grep -qw amx_tile /proc/cpuinfo; then
  VARIANTS="$VARIANTS int8-without-amx"
  case " $PRECISIONS " in *" bf16 "*) VARIANTS="$VARIANTS bf16-without-amx" ;; esac
fi
for round in $(seq "$ROUNDS"); do
  torch=$("$PY" scripts/bench_torch.py --shape base --threads 2 --repeat 10 --json 2>/dev/null | tail -n 1 \
    | "$PY" -c 'import json,sys; print(round(json.load(sys.stdin)["pytorch"]["tokens_per_second"]))')
  line="round $round: pytorch $torch tok/s"
  for variant in $VARIANTS; do
    precision="${variant%-without-amx}" disable=""
    [ "$variant" = "$precision" ] || disable=amx
    tps=$(KILN_DISABLE_CPU_FEATURES="$disable" "$KILN" forward --config "$BASE/config.json" \
      --weights "$BASE/model.safetensors" --batch 8 --seq 128 --repeat 10 --precision "$precision" --json 2>/dev/null \
      | "$PY" -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_second"]))')
    line="$line, kiln $variant $tps ($("$PY" -c "print(f'{$tps / $torch:.2f}x')"))"
  done
  echo "$line"
done
# The reduced precisions' error on "base": the same seeded input through each, against f32.
for precision in $PRECISIONS; do
  "$KILN" forward --config "$BASE/config.json" --weights "$BASE/model.safetensors" --batch 8 --seq 128 \
    --seed 1 --precision "$precision" --output "$BASE/out_$precision.npy" >/dev/null 2>&1
done
"$PY" - "$BASE" $PRECISIONS <<'PY'
import sys
import numpy as np
base, precisions = sys.argv[1], sys.argv[2:]
f32 = np.load(f"{base}/out_f32.npy")
for p in precisions[1:]:
    err = np.abs(np.load(f"{base}/out_{p}.npy") - f32)
    print(f'"base" {p} against f32: max-abs {err.max():.4f}, mean-abs {err.mean():.5f} '
          f'(f32 output within [{f32.min():.3f}, {f32.max():.3f}])')
PY

if grep -qw amx_tile /proc/cpuinfo; then
  echo "=== all-MiniLM-L6-v2, kiln only: AMX against the AVX-512 kernels (KILN_DISABLE_CPU_FEATURES=amx), alternating"
  CORPUS=crates/kiln-bench/data/sentences_1000.txt MODEL=.cache/models/all-MiniLM-L6-v2
  for round in $(seq "$ROUNDS"); do
    line="round $round:"
    for variant in $VARIANTS; do
      case "$variant" in f32) continue ;; esac
      precision="${variant%-without-amx}" disable=""
      [ "$variant" = "$precision" ] || disable=amx
      sps=$(KILN_DISABLE_CPU_FEATURES="$disable" "$KILN" embed --model "$MODEL" --input-file "$CORPUS" \
        --output "$BASE/embeddings.npy" --precision "$precision" --json 2>/dev/null | grep '^{' | tail -n 1 \
        | "$PY" -c 'import json,sys; d = json.load(sys.stdin); print(round(d["shape"][0] / d["embed_seconds"]))')
      line="$line kiln $variant $sps/s,"
    done
    echo "${line%,}"
  done
fi
