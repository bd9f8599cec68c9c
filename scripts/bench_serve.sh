#!/usr/bin/env bash
# `kiln serve` under load, side by side with infinity-emb in one run (docs/serving.md):
# single-sentence OpenAI embedding requests from the 1,000-sentence corpus, sent by wrk over
# loopback at concurrency 1, 16, 64 and 256; offline `kiln embed` on the same texts as the
# ceiling; then an overload run (4x the server's --max-concurrent-requests for OVERLOAD_S
# seconds) that counts statuses, polls /health throughout and records peak RSS.
#
#   cargo build --release -p kiln-cli && bash scripts/fetch_minilm.sh
#   apt-get install wrk                          # Debian's HTTP load generator
#   bash scripts/setup_infinity.sh               # optional: infinity-emb in its own venv
#   bash scripts/bench_serve.sh [SECONDS]        # per concurrency level; default 20
#
# Everything talks to 127.0.0.1 only, and every run stops by itself. Prints the CPU model and
# flags first: figures from different machines do not compare.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_LEVEL="${1:-20}"
OVERLOAD_S="${OVERLOAD_S:-60}"
LEVELS="${LEVELS:-1 16 64 256}"
KILN="${KILN:-target/release/kiln}"
MODEL="${MODEL:-.cache/models/all-MiniLM-L6-v2}"
CORPUS="${CORPUS:-crates/kiln-bench/data/sentences_1000.txt}"
INFINITY="${INFINITY:-${KILN_INFINITY_VENV:-$HOME/.cache/kiln-infinity}/bin/infinity_emb}"
[ -x "$KILN" ] || { echo "build first: cargo build --release -p kiln-cli" >&2; exit 2; }
[ -d "$MODEL" ] || { echo "no model at $MODEL: bash scripts/fetch_minilm.sh" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
MODEL="$(cd "$MODEL" && pwd)"
export CORPUS="$(cd "$(dirname "$CORPUS")" && pwd)/$(basename "$CORPUS")"
export MODEL_NAME=all-MiniLM-L6-v2
WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT

date -u
grep -m1 'model name' /proc/cpuinfo || true
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512|vnni|amx|bf16|fma|avx2' | tr '\n' ' ' || true
echo; echo "cores: $(nproc); wrk: 1 thread; server and load generator share the machine"

# Waits until GET $1/health answers 200 (at most $2 seconds).
wait_healthy() {
  for _ in $(seq $(( $2 * 10 ))); do
    curl -fs -m 1 "$1/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited" >&2; return 1; }
    sleep 0.1
  done
  echo "no healthy server at $1 after $2 s" >&2
  return 1
}

# Runs the load levels against $2 (a URL); prints "name concurrency json" lines.
load_levels() {
  local name="$1" url="$2"
  for c in $LEVELS; do
    local result
    result=$(wrk -t1 -c"$c" -d"${SECONDS_PER_LEVEL}s" --timeout 30s -s scripts/serve_load.lua "$url" | grep '^{')
    echo "$name c=$c $result"
  done
}

echo; echo "=== offline: kiln embed on the corpus (batch 32, the ceiling a server works against)"
"$KILN" embed --model "$MODEL" --input-file "$CORPUS" --output "$WORK/offline.npy" --json 2>/dev/null \
  | grep '^{' | tail -n 1 | python3 -c 'import json,sys; d = json.load(sys.stdin); print("kiln embed: %.1f sentences/s" % (d["shape"][0] / d["embed_seconds"]))'

echo; echo "=== kiln serve (default backend and precision), POST /v1/embeddings"
"$KILN" serve --model "$MODEL" --port 0 > "$WORK/kiln.out" 2> "$WORK/kiln.err" &
SERVER_PID=$!
for _ in $(seq 300); do grep -q '^listening on ' "$WORK/kiln.out" && break; sleep 0.1; done
KILN_URL="$(sed -n 's/^listening on //p' "$WORK/kiln.out")"
[ -n "$KILN_URL" ] || { cat "$WORK/kiln.err" >&2; exit 1; }
wait_healthy "$KILN_URL" 30
load_levels kiln "$KILN_URL/v1/embeddings"
stop_server

if [ -x "$INFINITY" ]; then
  echo; echo "=== infinity-emb (default torch engine, same model), POST /embeddings"
  "$INFINITY" v2 --model-id "$MODEL" --served-model-name "$MODEL_NAME" --engine torch --device cpu \
    --host 127.0.0.1 --port 7997 --url-prefix "" --log-level warning > "$WORK/infinity.log" 2>&1 &
  SERVER_PID=$!
  wait_healthy "http://127.0.0.1:7997" 300 || { tail -20 "$WORK/infinity.log" >&2; exit 1; }
  load_levels infinity "http://127.0.0.1:7997/embeddings"
  stop_server
else
  echo; echo "=== infinity-emb: not installed at $INFINITY (bash scripts/setup_infinity.sh); skipped"
fi

echo; echo "=== overload: kiln serve --max-concurrent-requests 64, 256 connections for $OVERLOAD_S s"
"$KILN" serve --model "$MODEL" --port 0 --max-concurrent-requests 64 > "$WORK/kiln.out" 2> "$WORK/kiln.err" &
SERVER_PID=$!
for _ in $(seq 300); do grep -q '^listening on ' "$WORK/kiln.out" && break; sleep 0.1; done
KILN_URL="$(sed -n 's/^listening on //p' "$WORK/kiln.out")"
wait_healthy "$KILN_URL" 30
# /health every 0.5 s throughout, each with a 2 s timeout.
( ok=0; failed=0; end=$(( $(date +%s) + OVERLOAD_S ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if curl -fs -m 2 "$KILN_URL/health" >/dev/null; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
    sleep 0.5
  done
  echo "health during overload: $ok answered 200, $failed failed" ) > "$WORK/health.txt" &
HEALTH_PID=$!
wrk -t1 -c256 -d"${OVERLOAD_S}s" --timeout 30s -s scripts/serve_load.lua "$KILN_URL/v1/embeddings" \
  | grep '^{' | sed 's/^/overload: /'
wait "$HEALTH_PID"
cat "$WORK/health.txt"
echo "peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$SERVER_PID/status")"
# Afterwards: one request of every corpus line's kind still answers 200 with the offline vector.
curl -fs -m 10 -H 'Content-Type: application/json' \
  -d "{\"input\": $(head -n 1 "$CORPUS" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().rstrip("\n")))')}" \
  "$KILN_URL/v1/embeddings" > "$WORK/after.json"
python3 - "$WORK/after.json" "$WORK/offline.npy" <<'PY'
import json, struct, sys
served = json.load(open(sys.argv[1]))["data"][0]["embedding"]
# The first row of the offline .npy (little-endian f32 after the header).
raw = open(sys.argv[2], "rb").read()
header_len = struct.unpack("<H", raw[8:10])[0]
offline = struct.unpack(f"<{len(served)}f", raw[10 + header_len:10 + header_len + 4 * len(served)])
diff = max(abs(a - b) for a, b in zip(served, offline))
print(f"after overload: 200, max |served - offline| = {diff:.1e}")
sys.exit(0 if diff <= 1e-5 else 1)
PY
stop_server
