#!/usr/bin/env bash
# The test command: formatting, lints, the wasm build of the viewer's types,
# then every test. Run from anywhere: ./scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo check --lib --target wasm32-unknown-unknown"
cargo check --lib --locked --target wasm32-unknown-unknown
echo "== cargo test"
cargo test --locked
