#!/usr/bin/env bash
# The official `openai` Python client (from PyPI) against `kiln serve`, unchanged: embeddings
# of a list and of one text equal `kiln embed`'s, base64 and float encodings, `dimensions`,
# and bad requests / a wrong API key raising the client's typed errors. CI runs it.
#
#   KILN=target/release/kiln bash scripts/test_openai_client.sh
#
# Installs `openai` into a venv under .cache/venv-openai the first time. The server listens on
# 127.0.0.1 on a free port and is stopped (SIGTERM, which must exit 0) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN="${KILN:-target/release/kiln}"
[ -x "$KILN" ] || { echo "no kiln binary at $KILN (cargo build --release -p kiln-cli)" >&2; exit 2; }
MODEL="$(bash scripts/fetch_minilm.sh | tail -n 1)"
VENV="${OPENAI_VENV:-.cache/venv-openai}"
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'openai>=1.40'
fi
"$VENV/bin/python" -c 'import openai; print("openai", openai.__version__)'

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -z "$SERVER_PID" ] || kill -KILL "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
head -n 12 crates/kiln-bench/data/sentences_1000.txt > "$WORK/texts.txt"
"$KILN" embed --model "$MODEL" --input-file "$WORK/texts.txt" --output "$WORK/offline.npy" >/dev/null

KEY="kiln-test-key"
"$KILN" serve --model "$MODEL" --port 0 --api-key "$KEY" > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 600); do grep -q '^listening on ' "$WORK/serve.out" && break; sleep 0.1; done
URL="$(sed -n 's/^listening on //p' "$WORK/serve.out")"
[ -n "$URL" ] || { echo "kiln serve did not start:" >&2; cat "$WORK/serve.err" >&2; exit 1; }

"$VENV/bin/python" scripts/test_openai_client.py "$URL" "$KEY" "$WORK/offline.npy" "$WORK/texts.txt"

kill -TERM "$SERVER_PID"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
[ "$status" -eq 0 ] || { echo "kiln serve exited $status on SIGTERM" >&2; exit 1; }
echo "kiln serve stopped cleanly on SIGTERM"
