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
mkdir -p "$cache/debs"
cd "$cache/debs"
if ! ls wordnet-base_*.deb >/dev/null 2>&1; then
  # A fresh machine may have empty package lists: refresh them once and retry.
  if ! apt-get download wordnet-base >&2; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    apt-get download wordnet-base >&2
  fi
fi
rm -rf "$cache/wordnet-base" && mkdir -p "$cache/wordnet-base"
dpkg-deb -x wordnet-base_*.deb "$cache/wordnet-base"
dict=$(dirname "$(find "$cache/wordnet-base" -name data.noun | head -n 1)")
rm -rf "$out" && mkdir -p "$out"
for f in data.noun data.verb data.adj data.adv noun.exc verb.exc adj.exc adv.exc; do
  cp "$dict/$f" "$out/$f"
done
echo "$out"
