#!/usr/bin/env bash
# On the device machine: unpacks what scripts/device_prepare.sh packed (the Vulkan loader from
# .gl/ where the image has none, the kiln binary, the MiniLM weights widened back to f32), then
# runs scripts/device_check.sh (arguments passed on). Everything lands in $OUT.
set -u
D=.devcarry
ldconfig -p | grep -q libvulkan.so.1 || { for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; }
if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    [ -e "$f" ] && { export VK_DRIVER_FILES="$f"; break; }
  done
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
PY="${PY:-python3}"
"$PY" - <<'PYEOF'
import lzma, shutil, os
with lzma.open(".devcarry/kiln.xz") as src, open(".devcarry/kiln", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(".devcarry/kiln", 0o755)
from safetensors.torch import load_file, save_file
w = load_file(".devcarry/model/model.f16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in w.items()},
          ".devcarry/model/model.safetensors")
PYEOF
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)'; "$PY" -c 'import torch, sentence_transformers as s; print("torch", torch.__version__, "st", s.__version__)'; } 2>&1 | tee "$OUT/machine.txt"
set -o pipefail
KILN=$D/kiln MODEL=$D/model OUT="$OUT" PY="$PY" N="${N:-100000}" timeout "${BUDGET:-480}" bash scripts/device_check.sh "$@" 2>&1 | tee "$OUT/log.txt"
status=$?
echo "device_check exit $status"
exit "$status"
