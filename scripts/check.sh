#!/usr/bin/env bash
# The test command: formatting, lints, the wasm build of the viewer, then
# every unit, integration and UI test. Run from anywhere: ./scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo check --lib --target wasm32-unknown-unknown (the web viewer)"
cargo check --lib --locked --target wasm32-unknown-unknown
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Benches are left out: they are measurements (cargo bench), not tests.
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
