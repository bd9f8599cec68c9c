#!/usr/bin/env bash
# Builds the Python package (crates/kiln-py: `kiln`, with the Rust extension `kiln._kiln`) into a
# virtual environment, .cache/venv-py, and runs its pytest tests (crates/kiln-py/tests/).
# Everything comes from PyPI and crates.io. Arguments go to pytest (e.g. -k embed_corpus).
#
# The extension is built by `maturin develop` in the dev profile, into the workspace's target/.
# CI runs this after `cargo test --workspace`, which has compiled every kiln, burn and wgpu crate
# the extension needs in that profile with the same CARGO_* settings (set below as .ci/run sets
# them); crates/kiln-py/Cargo.toml gives its dependencies the features the workspace's tests
# resolve, so those artifacts are reused and only PyO3, numpy and kiln's crates are compiled
# (scripts/check_py_build_reuse.sh checks it first). A release build (`maturin develop --release`)
# would recompile the whole dependency tree for a faster test run that does not pay it back;
# the dev profile already optimises dependencies (opt-level 2) and kiln's crates (1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

venv=.cache/venv-py
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "maturin>=1.9.4,<2" numpy pytest pyarrow "ray[data]"
export VIRTUAL_ENV="$PWD/$venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"

# Fails when the extension's build would not reuse the tests' compiled dependencies (a CI step
# that silently grows by ten minutes otherwise).
bash scripts/check_py_build_reuse.sh
maturin develop --manifest-path crates/kiln-py/Cargo.toml

model="$(bash scripts/fetch_minilm.sh)"
export KILN_MINILM="$PWD/$model"
# The CLI the tests compare with (`kiln embed`, `kiln forward`): the one `cargo test --workspace`
# built. Without one the tests that compare with it fail.
if [ -z "${KILN:-}" ] && [ -x target/debug/kiln ]; then
  export KILN="$PWD/target/debug/kiln"
fi

python -m pytest crates/kiln-py/tests -q -ra "$@"
