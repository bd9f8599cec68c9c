#!/usr/bin/env bash
# Measures docs/compression.md's figures on all-MiniLM-L6-v2 in one run: fidelity (mean/min
# cosine, Spearman of pairwise similarities on 200 held-out fortunes) of each compression, sizes,
# and CPU speed of the pruned models next to the original (alternating runs, median of 3).
#
#   scripts/compression_report.sh [STEPS] [LINES]
#     STEPS: distillation steps (default 100); LINES: training lines used for importance and
#     distillation (default 512; on 2 cores a step of batch 16 takes ~1-2 s).
#
# Needs the release binary (cargo build --release -p kiln-cli), scripts/fetch_minilm.sh and
# scripts/fetch_fortunes.sh. Writes .cache/compression/<name>/ and prints a markdown table.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
steps="${1:-100}"
lines="${2:-512}"
kiln=target/release/kiln
model=.cache/models/all-MiniLM-L6-v2
bash scripts/fetch_minilm.sh >/dev/null
data="$(bash scripts/fetch_fortunes.sh)"
out=.cache/compression
rm -rf "$out" && mkdir -p "$out"
head -n "$lines" "$data/fortunes_train.txt" >"$out/train.txt"
common=(--model "$model" --backend flex --data "$out/train.txt" --heldout "$data/fortunes_heldout.txt" --seed 0 --json)

run() { # name, kiln prune/quantize args...
  local name=$1; shift
  echo "== $name: kiln $*" >&2
  "$kiln" "$@" --out "$out/$name" >"$out/$name.json"
}
run magnitude-20 prune "${common[@]}" --method magnitude --rate 0.2
run global-magnitude-20 prune "${common[@]}" --method global-magnitude --rate 0.2
run random-20 prune "${common[@]}" --method random --rate 0.2
run wanda-20 prune "${common[@]}" --method wanda --rate 0.2
run magnitude-20-distilled prune "${common[@]}" --method magnitude --rate 0.2 --finetune-steps "$steps" --lr 5e-5
run heads-ffn-30-norm prune "${common[@]}" --method heads,ffn --rate 0.3 --importance norm
run heads-ffn-30-gradient prune "${common[@]}" --method heads,ffn --rate 0.3 --importance gradient
run heads-ffn-30-distilled prune "${common[@]}" --method heads,ffn --rate 0.3 --importance gradient --finetune-steps "$steps" --lr 1e-4
run heads-ffn-30-activation prune "${common[@]}" --method heads,ffn --rate 0.3 --importance activation
run heads-ffn-30-reconstructed prune "${common[@]}" --method heads,ffn --rate 0.3 --importance activation --reconstruct
run heads-ffn-30-reconstructed-distilled prune "${common[@]}" --method heads,ffn --rate 0.3 --importance activation --reconstruct --finetune-steps "$steps" --lr 2e-5
run int8 quantize --model "$model" --backend flex --heldout "$data/fortunes_heldout.txt" --json

# Speed: the same 1,000 lines through the original and the shrunk model, alternating, 3 rounds.
tail -n 1000 "$data/fortunes_train.txt" >"$out/speed_lines.txt"
for round in 1 2 3; do
  for m in "$model" "$out/heads-ffn-30-reconstructed-distilled"; do
    "$kiln" embed --model "$m" --backend flex --input-file "$out/speed_lines.txt" \
      --output "$out/speed.npy" --json | python3 -c "import json,sys; print('$m', json.load(sys.stdin)['texts_per_second'])"
  done
done >"$out/speed.txt"

python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
def fid(f):
    return "n/a" if not f else f"{f['mean_cosine']:.4f} / {f['min_cosine']:.4f} / {f['spearman']:.4f}"
print("| model | params | file MB | heads | FFN | held-out cosine mean / min / Spearman | after distillation |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name in ["magnitude-20", "global-magnitude-20", "random-20", "wanda-20", "magnitude-20-distilled",
             "heads-ffn-30-norm", "heads-ffn-30-gradient", "heads-ffn-30-distilled",
             "heads-ffn-30-activation", "heads-ffn-30-reconstructed", "heads-ffn-30-reconstructed-distilled"]:
    r = json.loads((out / f"{name}.json").read_text())
    size = (out / name / "model.safetensors").stat().st_size / 1e6
    sp = r["sparsity"]["total"]["sparsity"]
    print(f"| {name} (sparsity {sp:.3f}) | {r['params_after']:,} (of {r['params_before']:,}) | {size:.1f} | "
          f"{sum(r['layer_heads'])} | {r['layer_dim_feedforward'][0]} | {fid(r['fidelity_before_finetune'])} | "
          f"{fid(r['fidelity_after_finetune'])} |")
q = json.loads((out / "int8.json").read_text())
print(f"| int8 file | | {q['bytes_after']/1e6:.1f} (of {q['bytes_before']/1e6:.1f}) | | | {fid(q['fidelity_int8_file'])} | |")
print(f"| burn int8 in memory | | | | | {fid(q['fidelity_burn_int8'])} | |")
speeds = {}
for line in (out / "speed.txt").read_text().splitlines():
    m, v = line.rsplit(" ", 1)
    speeds.setdefault(m, []).append(float(v))
(orig, a), (pruned, b) = speeds.items()
ma, mb = statistics.median(a), statistics.median(b)
print(f"\nspeed (flex, 1,000 fortunes, batch 32, median of 3 alternating): original {ma:.1f} texts/s, "
      f"heads+ffn 30% {mb:.1f} texts/s: {mb/ma:.2f}x")
PY
