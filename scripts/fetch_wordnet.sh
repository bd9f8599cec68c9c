#!/usr/bin/env bash
# WordNet 3.0's database files for synonym replacement (kiln-augment), from Debian's
# `wordnet-base` package: downloaded with apt-get download (no root needed), extracted under
# .cache/wordnet (data.{noun,verb,adj,adv} and the *.exc morphology exception lists).
# Idempotent; prints the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
out="$cache/wordnet"
if [[ -s "$out/data.noun" && -s "$out/verb.exc" ]]; then
  echo "$out"; exit 0
fi
source "$root/scripts/lib/apt_fetch.sh"
apt_extract wordnet-base "$cache/wordnet-base"
dict=$(dirname "$(find "$cache/wordnet-base" -name data.noun | head -n 1)")
rm -rf "$out" && mkdir -p "$out"
for f in data.noun data.verb data.adj data.adv noun.exc verb.exc adj.exc adv.exc; do
  cp "$dict/$f" "$out/$f"
done
echo "$out"
