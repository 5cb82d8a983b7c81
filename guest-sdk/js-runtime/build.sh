#!/usr/bin/env bash
# Builds the JS runtime and puts it where the JS SDK's nsbox-build takes it from
# (guest-sdk/js/runtime/nsbox-js-runtime.wasm, committed: the SDK's users need no Rust).
# `--check` builds and fails if the committed file differs from the build; `--clippy` lints.
#
# Needs Debian's clang for wasm32 (QuickJS is C) and the wasm32-wasip1 target:
#   apt-get install clang-16 llvm-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
export RQUICKJS_SYS_NO_WASI_SDK=1 CC_wasm32_wasip1=clang-16 AR_wasm32_wasip1=llvm-ar-16
# Paths are mapped so that the build is the same from any checkout.
root=$(cd ../.. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nsbox-target}/js-runtime"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export CFLAGS_wasm32_wasip1="--target=wasm32-wasi --sysroot=/usr -isystem /usr/include/wasm32-wasi -ffile-prefix-map=$root=. -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$CARGO_TARGET_DIR=/target"
export RUSTFLAGS="--remap-path-prefix=$root=. --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$CARGO_TARGET_DIR=/target"
if [ "${1:-}" = --clippy ]; then
  exec cargo clippy --locked --target wasm32-wasip1 -- -D warnings
fi
cargo build --release --locked --target wasm32-wasip1
built="$CARGO_TARGET_DIR/wasm32-wasip1/release/nsbox_js_runtime.wasm"
committed=../js/runtime/nsbox-js-runtime.wasm
if [ "${1:-}" = --check ]; then
  if ! cmp -s "$built" "$committed"; then
    echo "guest-sdk/js/runtime/nsbox-js-runtime.wasm is not what guest-sdk/js-runtime builds: run guest-sdk/js-runtime/build.sh and commit it" >&2
    exit 1
  fi
  echo "guest-sdk/js/runtime/nsbox-js-runtime.wasm matches its source"
else
  mkdir -p "$(dirname "$committed")"
  cp "$built" "$committed"
  echo "$committed ($(stat -c %s "$committed") bytes)"
fi
