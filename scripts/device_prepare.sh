#!/usr/bin/env bash
# Packs what one device call needs into .devcarry/ (ignored; under the device tool's 64 MiB):
# the stripped release binary xz-compressed (~12 MB of ~65), and all-MiniLM-L6-v2 with its
# weights stored as f16 (45 MB of 87; scripts/device_run.sh widens them back to f32 there, so
# kiln and sentence-transformers see the same f32 values). Then, with the device tool:
#
#   bash scripts/device_prepare.sh                     # here, after cargo build --release -p kiln-cli
#   run: bash scripts/device_run.sh   carry: [".devcarry", ".gl"]
# .gl/ holds the Vulkan loader's .deb files (fetched here with apt-get download when missing:
# a device image may have no libvulkan.so.1).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-.cache/models/all-MiniLM-L6-v2}"
[ -x target/release/kiln ] || { echo "build first: cargo build --release -p kiln-cli" >&2; exit 2; }
[ -f "$MODEL/model.safetensors" ] || bash scripts/fetch_minilm.sh >/dev/null
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
rm -rf .devcarry && mkdir -p .devcarry/model
strip -o .devcarry/kiln target/release/kiln
xz -T0 -6 .devcarry/kiln
(cd "$MODEL" && tar cf - --exclude=model.safetensors --exclude=README.md .) | tar xf - -C .devcarry/model
python3 scripts/device_check.py f16 "$MODEL/model.safetensors" .devcarry/model/model.f16.safetensors
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  grep -qx '/.gl/' .git/info/exclude || echo '/.gl/' >> .git/info/exclude
  mkdir -p .gl /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update >/dev/null
  (cd .gl && apt-get "${o[@]}" download libvulkan1 >/dev/null)
fi
du -sh .devcarry .gl
