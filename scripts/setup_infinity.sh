#!/usr/bin/env bash
# infinity-emb (PyPI), the peer of `kiln serve` in scripts/bench_serve.sh, in a venv of its own
# (default ~/.cache/kiln-infinity; KILN_INFINITY_VENV to change): its default torch engine on CPU.
# Idempotent. Prints the infinity_emb path.
set -euo pipefail
VENV="${KILN_INFINITY_VENV:-$HOME/.cache/kiln-infinity}"
if ! [ -x "$VENV/bin/infinity_emb" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "infinity-emb[server,torch]"
fi
"$VENV/bin/python" -c 'import importlib.metadata as m; print("infinity-emb", m.version("infinity-emb"), "torch", m.version("torch"))' >&2
echo "$VENV/bin/infinity_emb"
