#!/usr/bin/env bash
# kiln on a real GPU in one call: the encoder's PyTorch parity fixtures on wgpu, `kiln bench`
# ("base" at batch 8 and 64, and 12 layers at batch 64 x 256), all-MiniLM-L6-v2 on 100,000
# sentences with `kiln embed --backend wgpu`, and, when the machine has them, PyTorch CUDA eager
# (f32 with TF32 off, and fp16) on the same shapes and sentence-transformers on CUDA on the same
# sentences. Writes $OUT/results.jsonl (one JSON line per step), $OUT/device_check.json (all rows
# and the ratios) and $OUT/device_check.md (one table), and prints the table.
#
#   cargo build --release -p kiln-cli && strip -o kiln-stripped target/release/kiln   # beforehand
#   KILN=./kiln-stripped bash scripts/device_check.sh            # on the GPU machine (~5 min)
#   KILN=target/debug/kiln bash scripts/device_check.sh --dry-run   # tiny sizes, any Vulkan (CI: lavapipe)
#
# Needs only bash and python3 (standard library) besides the binary; no internet. MODEL (default
# .cache/models/all-MiniLM-L6-v2) may lack model.safetensors (too big to carry beside the binary):
# the script then writes deterministic weights of the config's shape, so the embedding rows
# measure speed only (said in the row); with real weights, sentence-transformers' row adds the
# cosine of kiln's embeddings to its own. N (default 100000) sets the number of sentences.
# Exit 1 when a kiln step fails or parity is above 1e-4.
set -uo pipefail
cd "$(dirname "$0")/.."
KILN="${KILN:-target/release/kiln}"
PY="${PY:-python3}"
OUT="${OUT:-device_check_out}"
MODEL="${MODEL:-.cache/models/all-MiniLM-L6-v2}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
HELP="scripts/device_check.py"
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: > "$RES"
FAILED=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
log() { echo "device_check [${SECONDS}s]: $*" >&2; }
record() { echo "$1" >> "$RES"; }
fail() { FAILED=1; record "{\"name\": \"$1\", \"status\": \"failed: $2\"}"; log "$1 failed: $2"; }

[ -x "$KILN" ] || { log "no kiln binary at $KILN (set KILN=...)"; exit 2; }
command -v "$PY" >/dev/null || { log "no $PY"; exit 2; }

# --- 0. The Vulkan loader and the NVIDIA ICD, and how they were looked for.
loader=""
for p in $(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1/ {print $NF}') \
    /usr/lib/x86_64-linux-gnu/libvulkan.so.1 /usr/lib64/libvulkan.so.1 /usr/local/lib/libvulkan.so.1; do
  [ -e "$p" ] && { loader="$p"; break; }
done
icd_dirs="/usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d"
vk_icds="${VK_ICD_FILENAMES:-}:${VK_DRIVER_FILES:-}"
icds=$(ls ${vk_icds//:/ } $(for d in $icd_dirs; do echo "$d"/*.json; done) 2>/dev/null | sort -u | tr '\n' ' ')
nvidia_icd=$(for f in $icds; do grep -l -i nvidia "$f" 2>/dev/null; done | head -n 1)
gpu=$(nvidia-smi -L 2>/dev/null | head -n 1)
looked="loader: ldconfig -p, /usr/lib/x86_64-linux-gnu, /usr/lib64, /usr/local/lib; ICDs: VK_ICD_FILENAMES, VK_DRIVER_FILES, $icd_dirs"
missing=()
[ -n "$loader" ] || missing+=("Vulkan loader libvulkan.so.1 missing (Debian: libvulkan1)")
[ -n "$nvidia_icd" ] || missing+=("NVIDIA Vulkan ICD missing (nvidia_icd.json, the driver's Vulkan part)")
status="ok"
if [ "${#missing[@]}" -gt 0 ]; then
  status=$(IFS=';'; echo "${missing[*]}")
  log "$status; looked in $looked"
fi
adapters=$("$KILN" info --json 2>/dev/null | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["backends"]["wgpu"]["adapters"]))' 2>/dev/null || echo '[]')
record "{\"name\": \"vulkan\", \"loader\": \"$loader\", \"icds\": \"$icds\", \"nvidia_icd\": \"$nvidia_icd\", \"nvidia_smi\": \"$gpu\", \"looked\": \"$looked\", \"adapters\": $adapters, \"status\": \"$status\"}"
log "Vulkan: loader ${loader:-none}; ICDs ${icds:-none}; adapters $adapters"

# --- 1. The committed PyTorch fixtures on wgpu (<= 1e-4 at real tokens).
CASES=(tests/fixtures/encoder/*/)
# The dry run only shows that the script works (the test suite runs every fixture on wgpu).
[ "$DRY" = 1 ] && CASES=("${CASES[@]:0:1}")
for case in "${CASES[@]}"; do
  name="parity-$(basename "$case")"
  mkdir -p "$TMP/$name"
  args=$("$PY" "$HELP" fixture "$case" "$TMP/$name") || { fail "$name" "fixture"; continue; }
  # shellcheck disable=SC2086
  if ! "$KILN" forward --backend wgpu $args --output "$TMP/$name/out.npy" >/dev/null 2>"$TMP/$name/err"; then
    fail "$name" "$(tail -n 1 "$TMP/$name/err")"; continue
  fi
  line=$("$PY" "$HELP" compare "$case" "$TMP/$name/out.npy")
  ok=$(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("ok" if d.get("max_abs", 1) <= 1e-4 else "above 1e-4")')
  [ "$ok" = "ok" ] || FAILED=1
  record "$(echo "$line" | "$PY" -c "import json,sys; d=json.load(sys.stdin); d.update(name='$name', status='$ok'); print(json.dumps(d))")"
done

log "parity done"
# --- 2. kiln bench on wgpu.
if [ "$DRY" = 1 ]; then
  D="--d-model 64 --nhead 4 --dim-feedforward 128"; REPEAT=2
  SHAPES="base-b64:2:4:16"
else
  D="--d-model 768 --nhead 12 --dim-feedforward 3072"; REPEAT=10
  SHAPES="base-b8:4:8:128 base-b64:4:64:128 large:12:64:256"
fi
for spec in $SHAPES; do
  IFS=: read -r label layers batch seq <<< "$spec"
  name="kiln-wgpu-$label"
  # shellcheck disable=SC2086
  if "$KILN" bench --backend wgpu --shape custom $D --layers "$layers" --batch "$batch" --seq "$seq" \
      --repeat "$REPEAT" --json > "$TMP/$name.json" 2>"$TMP/$name.err"; then
    row=$("$PY" -c "import json; d=json.load(open('$TMP/$name.json')); print(json.dumps(dict(name='$name', layers=$layers, batch=$batch, seq=$seq, tokens_per_second=d['kiln']['tokens_per_second'], burn_nn_tokens_per_second=d['burn']['tokens_per_second'], padded=d.get('padded'))))") \
      && record "$row" || fail "$name" "unreadable bench output"
  else
    fail "$name" "$(tail -n 1 "$TMP/$name.err")"
  fi
  "$PY" "$HELP" torch --layers "$layers" --batch "$batch" --seq "$seq" --repeat "$REPEAT" \
      --suffix="-$label" >> "$RES" 2>"$TMP/torch.err" || log "PyTorch: $(tail -n 1 "$TMP/torch.err")"
done

log "bench done"
# --- 3. all-MiniLM-L6-v2 on the corpus with kiln embed --backend wgpu, and sentence-transformers.
N="${N:-100000}"; [ "$DRY" = 1 ] && N=4
"$PY" "$HELP" corpus crates/kiln-bench/data/sentences_1000.txt "$N" "$TMP/corpus.txt"
model="$MODEL"; weights="real weights"
if [ ! -f "$MODEL/model.safetensors" ]; then
  model="$TMP/model"; weights="deterministic weights of the config shape (speed only)"
  mkdir -p "$model" && cp -r "$MODEL"/. "$model"/ 2>/dev/null && "$PY" "$HELP" random-bert "$model" \
    || { fail "kiln-embed-wgpu" "no model at $MODEL (config.json, tokenizer.json needed)"; model=""; }
fi
if [ -n "$model" ]; then
  if "$KILN" embed --backend wgpu --model "$model" --input-file "$TMP/corpus.txt" \
      --output "$TMP/emb.npy" --json > "$TMP/embed.json" 2>"$TMP/embed.err"; then
    row=$(WEIGHTS="$weights" "$PY" -c "import json, os; d=json.load(open('$TMP/embed.json')); print(json.dumps(dict(name='kiln-embed-wgpu', n=$N, sentences_per_second=d['texts_per_second'], weights=os.environ['WEIGHTS'])))") \
      && record "$row" || fail "kiln-embed-wgpu" "unreadable summary"
  else
    fail "kiln-embed-wgpu" "$(tail -n 1 "$TMP/embed.err")"
  fi
  compare=()
  [ "$weights" = "real weights" ] && [ -s "$TMP/emb.npy" ] && compare=(--kiln-output "$TMP/emb.npy")
  "$PY" "$HELP" st "$model" "$TMP/corpus.txt" "${compare[@]}" >> "$RES" 2>"$TMP/st.err" \
    || log "sentence-transformers: $(tail -n 1 "$TMP/st.err")"
fi

log "embed done"
# --- 4. One JSON, one table.
"$PY" "$HELP" report "$RES" > "$OUT/device_check.json" 2> "$OUT/device_check.md"
cat "$OUT/device_check.md"
[ "$FAILED" = 0 ] || { log "some steps failed (see $RES)"; exit 1; }
