#!/usr/bin/env bash
# kiln.embed_corpus on a local Ray instance with 1, then 2 actors (one CPU each), against
# single-process kiln.TextEncoder on one thread, on the same corpus (docs/scale-out.md, "How
# throughput scales"). The corpus is the 1,000-sentence corpus repeated REPEAT times.
#
#   pip install maturin && maturin build --release -o wheels --manifest-path crates/kiln-py/Cargo.toml
#   pip install wheels/kiln-*.whl numpy pyarrow "ray[data]"
#   bash scripts/fetch_minilm.sh
#   PY=/path/to/venv/bin/python bash scripts/bench_scale_out.sh [REPEAT]   # default 10
#
# Prints the CPU model first: figures from different machines do not compare.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT="${1:-10}"
PY="${PY:-python3}"
MODEL="$(cd "$(bash scripts/fetch_minilm.sh | tail -n 1)" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for _ in $(seq "$REPEAT"); do cat crates/kiln-bench/data/sentences_1000.txt; done > "$WORK/corpus.txt"
date -u
grep -m1 'model name' /proc/cpuinfo || true
echo "cores: $(nproc); rows: $(wc -l < "$WORK/corpus.txt"); model: all-MiniLM-L6-v2, flex, f32, batch 32"

RAYON_NUM_THREADS=1 "$PY" - "$MODEL" "$WORK/corpus.txt" <<'PY'
import sys, time
import kiln
encoder = kiln.TextEncoder(sys.argv[1], backend="flex")
texts = open(sys.argv[2], encoding="utf-8").read().splitlines()
encoder.embed(texts[:64])
start = time.monotonic()
# In calls of 1,000 texts, the rows of one actor's block (--block-rows 1000 below).
for i in range(0, len(texts), 1000):
    encoder.embed(texts[i:i + 1000], batch_size=32)
seconds = time.monotonic() - start
print(f"single process, 1 thread, 1,000 texts per call: {len(texts)} rows in {seconds:.1f} s "
      f"= {len(texts) / seconds:.1f} rows/s")
PY

for actors in 1 2; do
  "$PY" -m kiln.embed_corpus --model "$MODEL" --input "$WORK/corpus.txt" --output "$WORK/out-$actors" \
    --num-actors "$actors" --cpus-per-actor 1 --batch-size 32 --block-rows 1000 --backend flex \
    --no-progress > /dev/null 2> "$WORK/log-$actors" || { cat "$WORK/log-$actors" >&2; exit 1; }
  "$PY" - "$WORK/out-$actors/manifest.json" "$actors" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"embed_corpus, {sys.argv[2]} actor(s) x 1 CPU: {m['rows']} rows in {m['seconds']:.1f} s "
      f"= {m['rows'] / m['seconds']:.1f} rows/s (Ray start-up and model loads included)")
PY
done
