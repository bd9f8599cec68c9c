#!/usr/bin/env bash
# A topic-classification set that is available offline: fortunes from eight categories of
# Debian's `fortunes` package (computers, food, law, love, politics, science, sports, startrek),
# the category being the label. Fixed split, written under .cache/data/topics/:
#   train.tsv                 the training split, `label<TAB>text` (up to 120 per class)
#   test.tsv                  held out, 30 per class (240)
#   labeled_seed{0,1,2}.tsv   20 labelled examples per class drawn from train.tsv by seed
#   unlabeled_seed{0,1,2}.txt the rest of train.tsv, texts only (labels dropped)
# Texts are whitespace-normalised fortunes of 30-300 characters, at most 150 per category
# (drawn with a fixed seed), and a text found in two categories is dropped.
# Idempotent; prints the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
out="$cache/data/topics"
if [[ -s "$out/test.tsv" && -s "$out/unlabeled_seed2.txt" ]]; then
  echo "$out"; exit 0
fi
fortunes="$cache/fortunes/usr/share/games/fortunes"
if [[ ! -s "$fortunes/computers" ]]; then
  source "$root/scripts/lib/apt_fetch.sh"
  apt_extract fortunes "$cache/fortunes"
fi
mkdir -p "$out"
python3 - "$fortunes" "$out" <<'PY'
import collections, pathlib, random, re, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
classes = ["computers", "food", "law", "love", "politics", "science", "sports", "startrek"]
per_class, test_per_class, labeled_per_class = 150, 30, 20
texts = {}
for name in classes:
    found = set()
    for block in (src / name).read_text(encoding="utf-8", errors="replace").split("\n%\n"):
        text = re.sub(r"\s+", " ", block).strip()
        letters = sum(c.isalpha() for c in text)
        if 30 <= len(text) <= 300 and letters >= 0.6 * len(text) and "\ufffd" not in text:
            found.add(text)
    texts[name] = found
seen = collections.Counter(t for found in texts.values() for t in found)
train, test = [], []
for name in classes:
    unique = sorted(t for t in texts[name] if seen[t] == 1)
    random.Random(f"topics-{name}").shuffle(unique)
    unique = unique[:per_class]
    test += [(name, t) for t in unique[:test_per_class]]
    train += [(name, t) for t in unique[test_per_class:]]
def write_tsv(path, rows):
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows))
random.Random(1).shuffle(train)
random.Random(2).shuffle(test)
write_tsv(out / "train.tsv", train)
write_tsv(out / "test.tsv", test)
for seed in range(3):
    rng = random.Random(seed)
    labeled = set()
    for name in classes:
        members = [i for i, (label, _) in enumerate(train) if label == name]
        labeled.update(rng.sample(members, labeled_per_class))
    write_tsv(out / f"labeled_seed{seed}.tsv", [train[i] for i in sorted(labeled)])
    (out / f"unlabeled_seed{seed}.txt").write_text(
        "".join(train[i][1] + "\n" for i in range(len(train)) if i not in labeled))
counts = collections.Counter(label for label, _ in train)
print(f"topics: {len(train)} train ({dict(counts)}), {len(test)} test; "
      f"{labeled_per_class * len(classes)} labelled per seed", file=sys.stderr)
PY
echo "$out"
