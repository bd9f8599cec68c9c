#!/usr/bin/env bash
# Checks that building the Python extension (crates/kiln-py, as maturin builds it: `cargo rustc`
# on that package alone) after `cargo test --workspace` recompiles nothing but PyO3, numpy and
# kiln's own crates. Cargo resolves features, and whether a crate used both at build time and
# at run time is compiled once or twice, per invocation; any difference gives a crate another
# hash, and everything above it (the whole burn/wgpu stack) is compiled again. kiln-py's
# Cargo.toml lists the crates that need a nudge; this script names any that still differ.
#
# It compares cargo's unit graphs (`--unit-graph`, an unstable flag: RUSTC_BOOTSTRAP=1 lets the
# stable toolchain print it; nothing is compiled). Exit 1 and a list when a unit differs.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export RUSTC_BOOTSTRAP=1
cargo test --workspace --no-run --unit-graph -Z unstable-options > "$work/workspace.json"
(cd crates/kiln-py && cargo rustc --lib --crate-type cdylib --unit-graph -Z unstable-options) \
  > "$work/kiln-py.json"
python3 - "$work/workspace.json" "$work/kiln-py.json" <<'PY'
import json, sys

# Built only for the extension, whatever the tests compiled (the workspace's own crates, from
# `path+file://` sources, are left out below: they are compiled in any case).
OWN = ("pyo3", "numpy", "target-lexicon", "rustc-hash@2")

def units(path):
    def key(unit):
        profile = dict(unit["profile"])
        profile.pop("name")  # "test" vs "dev": the same settings give the same artifact
        return (unit["pkg_id"], unit["target"]["name"], tuple(unit["target"]["kind"]),
                unit["mode"], tuple(unit["features"]), json.dumps(profile, sort_keys=True))
    return [key(u) for u in json.load(open(path))["units"]]

built = set(units(sys.argv[1]))
extra = sorted({
    f"{k[0].split('#')[-1]} ({k[1]}, {k[3]}, features [{', '.join(k[4])}], debuginfo "
    f"{json.loads(k[5])['debuginfo']})"
    for k in units(sys.argv[2])
    if k not in built and k[3] != "run-custom-build" and not k[0].startswith("path+")
    and not k[0].split("#")[-1].startswith(OWN)
})
if extra:
    print("check_py_build_reuse: the extension's build would compile these again (and every crate "
          "above them); give them the workspace's features in crates/kiln-py/Cargo.toml:",
          *extra, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("check_py_build_reuse: the extension's build reuses every dependency the tests compiled")
PY
