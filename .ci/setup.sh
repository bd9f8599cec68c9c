#!/usr/bin/env bash
# Installs the system packages kiln's tests need on a fresh Debian machine:
# - mesa-vulkan-drivers: lavapipe, a software Vulkan device, so the wgpu tests run without a GPU;
# - libopenblas-dev: the OpenBLAS that the optional `blas` feature links;
# - python3-venv: the virtual environment scripts/test_python.sh builds the Python package in;
# - apertium with apertium-eng-spa and apertium-eng-cat: offline machine translation for the
#   back-translation tests (scripts/install_apertium.sh, called at the end).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
  need+=(mesa-vulkan-drivers libvulkan1)
fi
if ! ls /usr/lib/x86_64-linux-gnu/libopenblas.so* /usr/lib/*/libopenblas.so* >/dev/null 2>&1; then
  need+=(libopenblas-dev)
fi
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
ls /usr/share/vulkan/icd.d/
bash "$(dirname "$0")/../scripts/install_apertium.sh"
