#!/usr/bin/env bash
# Install muxscope for the current user on Linux: the release binary in
# ~/.local/bin, the icon, a .desktop entry (so it starts by double-click and
# from the app menu) and the *.muxscope.ron MIME type (so double-clicking a
# layout opens it). Undo with: scripts/install-desktop.sh --uninstall
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir="${XDG_BIN_HOME:-$HOME/.local/bin}"
data="${XDG_DATA_HOME:-$HOME/.local/share}"

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$bin_dir/muxscope" "$data/applications/muxscope.desktop" \
        "$data/mime/packages/muxscope-layout.xml"
  for s in 16 32 48 64 128 256 512; do rm -f "$data/icons/hicolor/${s}x${s}/apps/muxscope.png"; done
else
  cargo build --release --locked
  install -Dm755 target/release/muxscope "$bin_dir/muxscope"
  for s in 16 32 48 64 128 256 512; do
    install -Dm644 "assets/icon-$s.png" "$data/icons/hicolor/${s}x${s}/apps/muxscope.png"
  done
  # Exec needs an absolute path when ~/.local/bin is not on the desktop's PATH.
  sed "s|^Exec=muxscope|Exec=$bin_dir/muxscope|" assets/linux/muxscope.desktop \
    | install -Dm644 /dev/stdin "$data/applications/muxscope.desktop"
  install -Dm644 assets/linux/muxscope-layout.xml "$data/mime/packages/muxscope-layout.xml"
fi
command -v update-mime-database >/dev/null && update-mime-database "$data/mime" || true
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "done: ${1:-installed} (binary: $bin_dir/muxscope)"
