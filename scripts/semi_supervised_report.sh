#!/usr/bin/env bash
# The semi-supervised table of docs/augmentation.md: on the fortunes topic split
# (scripts/fetch_topics.sh: 8 classes, 20 labelled texts per class, the rest of the training
# split unlabelled, 240 held-out texts), train a head over frozen all-MiniLM-L6-v2 embeddings
# with each method and seeds 0, 1, 2, and print accuracy and macro-F1 on the held-out split
# (mean ± std over the seeds, std with n-1). Embeddings are cached under .cache/classify, so
# a second run only trains (back-translations too: Apertium's are cached beside them). Per-run
# JSON under .cache/classify/runs/. METHODS="supervised bt" runs and prints only those rows.
#   bash scripts/semi_supervised_report.sh [extra train-classifier flags]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
data=$(bash scripts/fetch_topics.sh)
model=$(bash scripts/fetch_minilm.sh)
bash scripts/fetch_wordnet.sh >/dev/null
# Apertium with the English-Spanish pair, for the back-translation rows (root or sudo; only
# what is missing).
bash scripts/install_apertium.sh >/dev/null
cargo build --release -q -p kiln-cli
kiln=target/release/kiln
runs=.cache/classify/runs
mkdir -p "$runs"
read -r -a methods <<< "${METHODS:-supervised augment consistency pseudo all bt bt_uda full}"
for seed in 0 1 2; do
  for method in "${methods[@]}"; do
    labeled="$data/labeled_seed$seed.tsv"
    unlabeled=(--unlabeled "$data/unlabeled_seed$seed.txt")
    case $method in
      supervised) flags=() ;;
      augment) flags=(--augment eda) ;;
      consistency) flags=("${unlabeled[@]}" --consistency) ;;
      pseudo) flags=("${unlabeled[@]}" --pseudo-labels) ;;
      all) flags=(--augment eda "${unlabeled[@]}" --consistency --pseudo-labels) ;;
      # Back-translation through Spanish (Apertium): copies of the labelled texts, and UDA's
      # consistency on back-translated views of the unlabelled texts.
      bt) flags=(--augment back-translate --pivot spa) ;;
      bt_uda) flags=("${unlabeled[@]}" --consistency --uda-augment back-translate --pivot spa) ;;
      # Upper bound: every training text labelled.
      full) flags=(); labeled="$data/train.tsv" ;;
    esac
    echo "seed $seed: $method" >&2
    "$kiln" train-classifier --model "$model" --backend ndarray --labeled "$labeled" \
      "${flags[@]}" --seed "$seed" --eval "$data/test.tsv" --cache .cache/classify \
      --out "$runs/$method-seed$seed" --json "$@" > "$runs/$method-seed$seed.json"
  done
done
python3 - "$runs" "${methods[@]}" <<'PY'
import json, statistics, sys
runs, methods = sys.argv[1], sys.argv[2:]
names = {
    "supervised": "supervised (20 labels/class)",
    "augment": "+ EDA copies of the labelled texts (`--augment eda`)",
    "consistency": "+ UDA consistency on unlabelled texts (`--consistency`)",
    "pseudo": "+ pseudo-labels on unlabelled texts (`--pseudo-labels`)",
    "all": "+ all three",
    "bt": "+ back-translation copies of the labelled texts (`--augment back-translate`, Spanish pivot)",
    "bt_uda": "+ back-translation + UDA: consistency on back-translated views of the unlabelled texts (`--consistency --uda-augment back-translate`, Spanish pivot)",
    "full": "all training texts labelled (upper bound)",
}
print("| method | accuracy | macro-F1 | per seed (accuracy) |")
print("|---|---|---|---|")
for m in methods:
    evals = [json.load(open(f"{runs}/{m}-seed{s}.json"))["training"]["evaluation"] for s in range(3)]
    acc = [e["accuracy"] for e in evals]
    f1 = [e["macro_f1"] for e in evals]
    fmt = lambda xs: f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"
    print(f"| {names[m]} | {fmt(acc)} | {fmt(f1)} | {' / '.join(f'{a:.3f}' for a in acc)} |")
PY
