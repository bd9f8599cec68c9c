#!/usr/bin/env bash
# Apertium (offline rule-based machine translation) and the English pairs kiln's
# back-translation uses: apertium-eng-spa (Spanish, the default pivot) and apertium-eng-cat
# (Catalan), from Debian's archive. Needs root (or sudo); idempotent: installs only what is
# missing. The back-translation tests fail, never skip, without these. Other pivots:
#   bash scripts/install_apertium.sh apertium-en-gl apertium-eo-en
# (Galician, Esperanto; Debian's apertium-eu-en translates Basque -> English only).
set -euo pipefail
packages=(apertium apertium-eng-spa apertium-eng-cat "$@")
need=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    need+=("$p")
  fi
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
apertium -l | tr -d ' ' | grep -E '^(eng-spa|spa-eng|eng-cat|cat-eng)$' | tr '\n' ' '
echo
