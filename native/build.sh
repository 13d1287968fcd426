#!/usr/bin/env bash
# Build the compiled core (Rust twins of the serving path's pure steps, native/src) into an
# extension module beside the Python code that loads it:
#
#   bash native/build.sh PYTHON   # -> serving/_core<EXT_SUFFIX of PYTHON> (run by `make`)
#   RECS_CARGO_HOME=dir bash native/build.sh PYTHON   # cargo's download cache
#
# Exact versions from native/Cargo.lock (--locked). Without cargo, or when the build fails, it
# says so and exits non-zero; the Makefile goes on and the server runs the Python path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
die() { echo "native/build: $*; the server will run the Python path" >&2; exit 1; }
python="${1:?usage: native/build.sh PYTHON}"
# absolute: cargo runs pyo3's build script from elsewhere, where a relative path finds nothing
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
suffix="$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
out="$root/serving/_core$suffix"
# a module built from older sources must not outlive a failed build: the Python path runs
rm -f "$out"
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install Rust, e.g. rustup)"
if [[ -n "${RECS_CARGO_HOME:-}" ]]; then
    mkdir -p "$RECS_CARGO_HOME"
    export CARGO_HOME="$RECS_CARGO_HOME"
fi
start=$SECONDS
PYO3_PYTHON="$python" cargo build --release --locked --quiet \
    --manifest-path "$here/Cargo.toml" --target-dir "$here/target" \
    || die "cargo build failed (see above)"
built="$here/target/release/lib_core.so"
[[ -f "$built" ]] || die "no $built was built"
cp "$built" "$out.tmp" && mv "$out.tmp" "$out"
echo "native/build: serving/_core$suffix ($((SECONDS - start)) s)"
