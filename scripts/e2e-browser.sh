#!/usr/bin/env bash
# End to end in a real browser: the web viewer, served by a headless
# muxscope, shows a TCP client's row, and a Kick clicked in the page closes
# that client's socket; then the server's recording of that session opens
# in the page (File → Open recording…) and plays back.
#
#   scripts/e2e-browser.sh            # builds what is missing, then runs
#   E2E_SKIP_WEB_BUILD=1 scripts/e2e-browser.sh   # reuse dist/ as it is
#
# Needs: chromium (installed with apt-get if missing), node >= 20 (for the
# DevTools client, scripts/e2e-browser.mjs), and what scripts/build-web.sh
# needs. Screenshots and logs go to target/e2e-browser/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/e2e-browser
mkdir -p "$OUT"

if ! command -v chromium >/dev/null; then
  echo "== apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null; then
  echo "e2e-browser: node is needed (apt-get install nodejs)" >&2
  exit 1
fi

if [ "${E2E_SKIP_WEB_BUILD:-0}" != 1 ] || [ ! -f dist/index.html ]; then
  scripts/build-web.sh
fi
echo "== cargo build --bin muxscope"
cargo build --bin muxscope
BIN="${CARGO_TARGET_DIR:-target}/debug/muxscope"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== muxscope --headless --listen 127.0.0.1:0 --control 127.0.0.1:$PORT"
RECORDING="$(pwd)/$OUT/e2e-session.muxrec"
rm -f "$RECORDING"
"$BIN" --headless --listen 127.0.0.1:0 --control "127.0.0.1:$PORT" --web-root dist --record "$RECORDING" \
  >"$OUT/muxscope.out" 2>"$OUT/muxscope.err" &
SERVER=$!
stop_server() {
  if kill -0 "$SERVER" 2>/dev/null; then
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
}
trap stop_server EXIT

ECHO=""
for _ in $(seq 1 100); do
  ECHO=$(sed -n 's/^muxscope listening on //p' "$OUT/muxscope.out" | head -n1)
  if [ -n "$ECHO" ] && grep -q "^muxscope viewer on" "$OUT/muxscope.out"; then break; fi
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "e2e-browser: muxscope exited:" >&2
    cat "$OUT/muxscope.err" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$ECHO" ]; then
  echo "e2e-browser: muxscope did not start" >&2
  exit 1
fi
grep "^muxscope" "$OUT/muxscope.out"

echo "== chromium $(chromium --version 2>/dev/null | head -n1)"
set +e
node --experimental-websocket scripts/e2e-browser.mjs "$(command -v chromium)" "$ECHO" \
  "http://127.0.0.1:$PORT/" "$OUT" "$RECORDING" 2>&1 | grep -v "ExperimentalWarning\|--trace-warnings"
RESULT=${PIPESTATUS[0]}
set -e
stop_server
trap - EXIT
echo "== muxscope's own log (stderr)"
cat "$OUT/muxscope.err"
echo "== muxscope's stdout (last lines)"
tail -n4 "$OUT/muxscope.out"
if [ "$RESULT" = 0 ]; then
  echo "e2e-browser: PASS (screenshots in $OUT/)"
else
  echo "e2e-browser: FAIL (see $OUT/)"
fi
exit "$RESULT"
