#!/usr/bin/env bash
# Natural English text for compression (and augmentation) experiments, offline after the first
# run: Debian's `fortunes` package (downloaded with apt-get download, no root needed; extracted
# under .cache/), split into fixed, seeded train/held-out line files:
#   .cache/data/fortunes_train.txt    2,000 lines (distillation / unlabeled data)
#   .cache/data/fortunes_heldout.txt    200 lines (fidelity: cosine, Spearman)
#   .cache/data/fortunes_more.txt     the other ~9,200 lines (larger calibration sets)
# Idempotent; prints the data folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
data="$cache/data"
if [[ -s "$data/fortunes_train.txt" && -s "$data/fortunes_heldout.txt" && -s "$data/fortunes_more.txt" ]]; then
  echo "$data"; exit 0
fi
mkdir -p "$data"
source "$root/scripts/lib/apt_fetch.sh"
apt_extract fortunes "$cache/fortunes"
python3 - "$cache/fortunes/usr/share/games/fortunes" "$data" <<'PY'
import pathlib, random, re, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
skip = {"art", "ascii-art"}
texts = []
for f in sorted(src.iterdir()):
    if f.suffix or f.name in skip or not f.is_file():
        continue
    for block in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
        text = re.sub(r"\s+", " ", block).strip()
        letters = sum(c.isalpha() for c in text)
        if 30 <= len(text) <= 300 and letters >= 0.6 * len(text) and "\ufffd" not in text:
            texts.append(text)
texts = sorted(set(texts))
random.Random(0).shuffle(texts)
(out / "fortunes_heldout.txt").write_text("\n".join(texts[:200]) + "\n")
(out / "fortunes_train.txt").write_text("\n".join(texts[200:2200]) + "\n")
(out / "fortunes_more.txt").write_text("\n".join(texts[2200:]) + "\n")
print(f"{len(texts)} fortunes: 200 held out, {len(texts[200:2200])} for training, "
      f"{len(texts[2200:])} more", file=sys.stderr)
PY
echo "$data"
