#!/usr/bin/env bash
# Build the web viewer (src/web.rs, index.html) into dist/ with Trunk,
# without downloading anything but packages from the registries:
# - the wasm32-unknown-unknown target (rustup);
# - wasm-bindgen-cli at exactly the version Cargo.lock pins (cargo install);
# - trunk 0.21.14 (cargo install; about 14 CPU-minutes the first time);
# - wasm-opt from the npm package binaryen, into target/web-tools/.
# Then: trunk build --release --offline, which builds the wasm with the
# size-focused cargo profile `wasm-release` (Cargo.toml; index.html selects
# it) and shrinks it with wasm-opt -Oz. Extra arguments go to trunk.
# Last, scripts/precompress.mjs writes NAME.br and NAME.gz next to the wasm
# and the JavaScript, which the control endpoint sends to browsers that
# accept them.
#
# Serve the result with `muxscope --headless --control ADDR --web-root dist`
# (or ship it as dist/ next to the executable, which is the default).
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
BINARYEN_VERSION=132
TOOLS_DIR=target/web-tools
export PATH="$HOME/.cargo/bin:$PATH"

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly, or Trunk
# tries to download one.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WASM_BINDGEN_VERSION" ]; then
  echo "build-web: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "== rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! wasm-bindgen --version 2>/dev/null | grep -qw "$WASM_BINDGEN_VERSION"; then
  echo "== cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lockfile pins a crate version the registry lacks.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if ! trunk --version 2>/dev/null | grep -qw "$TRUNK_VERSION"; then
  echo "== cargo install trunk $TRUNK_VERSION (slow the first time)"
  cargo install --locked "trunk@$TRUNK_VERSION"
fi

if [ ! -x "$TOOLS_DIR/node_modules/.bin/wasm-opt" ]; then
  echo "== npm install binaryen@$BINARYEN_VERSION (wasm-opt)"
  if ! command -v npm >/dev/null; then
    echo "build-web: npm is needed for wasm-opt (apt-get install npm)" >&2
    exit 1
  fi
  mkdir -p "$TOOLS_DIR"
  npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
fi
export PATH="$PWD/$TOOLS_DIR/node_modules/.bin:$PATH"

# Where trunk writes (Trunk.toml says dist; --dist/-d on the command line
# overrides it).
DIST=dist
prev=""
for arg in "$@"; do
  case "$prev" in --dist | -d) DIST=$arg ;; esac
  case "$arg" in --dist=*) DIST=${arg#--dist=} ;; esac
  prev=$arg
done

echo "== trunk build --release --offline"
start=$(date +%s)
trunk build --release --offline "$@"
echo "== trunk build took $(($(date +%s) - start)) s"
echo "== precompress $DIST/ (brotli, gzip)"
node scripts/precompress.mjs "$DIST"
echo "== $DIST/"
ls -l "$DIST"
echo "serve it with: muxscope --headless --control 127.0.0.1:8801 --web-root dist"
