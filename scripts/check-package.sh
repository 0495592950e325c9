#!/usr/bin/env bash
# The package check (CI runs it after ./scripts/check.sh): packs the binary
# that the tests already built (target/debug/muxscope, the dev profile) into
# a .deb with cargo-deb, without building again; installs that .deb on this
# machine (dpkg -i, apt-get -f for its dependencies); then checks what a user
# gets: the desktop entry validates, *.muxscope.ron layouts open with
# muxscope, the MIME database knows them, and the installed binary runs.
#
# Debian/Ubuntu only. It installs system-wide (as root, or with sudo) and
# leaves muxscope installed: 'apt-get remove muxscope' takes it away.
# A release .deb is built with plain 'cargo deb' (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/system.sh

# Pinned, so that a new cargo-deb cannot change the package under CI.
cargo_deb_version=3.8.0
layout_mime=application/x-muxscope-layout
recording_mime=application/x-muxscope-recording

if ! command -v dpkg >/dev/null; then
  echo "error: the package check needs a Debian/Ubuntu system (dpkg)" >&2
  exit 1
fi

echo "== tools: desktop-file-utils, xdg-utils, shared-mime-info, dpkg-dev"
# dpkg-dev: dpkg-shlibdeps, which cargo-deb asks for the binary's libraries.
# desktop-file-utils and shared-mime-info must be there before the .deb is
# installed: their dpkg triggers update the desktop and MIME databases.
apt_need desktop-file-utils xdg-utils shared-mime-info dpkg-dev

echo "== cargo-deb $cargo_deb_version"
if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $cargo_deb_version" ]; then
  start=$SECONDS
  cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
  echo "installed cargo-deb $cargo_deb_version in $((SECONDS - start)) s"
fi

echo "== cargo deb --no-build --profile dev (the binary the tests built)"
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target/debug/muxscope"
if [ ! -x "$bin" ]; then
  echo "error: $bin is missing: run ./scripts/check.sh first (its tests build it)" >&2
  exit 1
fi
out="$target/debian"
rm -f "$out"/muxscope_*.deb
start=$SECONDS
# cargo-deb warns that the dev profile is meant for releases only; this .deb
# exists to be checked, and building a release binary would double CI's build.
cargo deb --no-build --profile dev --fast --output "$out/"
deb=$(ls "$out"/muxscope_*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1)) in $((SECONDS - start)) s"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{print $NF}' | grep -v '/$'

echo "== dpkg -i"
if ! as_root dpkg -i "$deb"; then
  echo "dpkg -i left dependencies missing: apt-get install -f"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq
fi
status=$(dpkg-query -W -f='${Package} ${Version} ${Status}' muxscope 2>&1 || true)
echo "$status"
case "$status" in
  "muxscope $(dpkg-deb -f "$deb" Version) install ok installed") ;;
  *) echo "error: $deb did not install (see dpkg's messages above)" >&2; exit 1 ;;
esac

failed=0
check() { # check ok|bad WHAT: prints PASS or FAIL and counts failures
  if [ "$1" = ok ]; then echo "PASS: $2"; else echo "FAIL: $2"; failed=$((failed + 1)); fi
}

echo "== desktop-file-validate /usr/share/applications/muxscope.desktop"
if desktop-file-validate /usr/share/applications/muxscope.desktop; then r=ok; else r=bad; fi
check $r "desktop-file-validate accepts the installed desktop entry"

echo "== xdg-mime query default $layout_mime"
default=$(xdg-mime query default "$layout_mime" || true)
echo "$default"
[ "$default" = muxscope.desktop ] && r=ok || r=bad
check $r "xdg-mime names muxscope.desktop as the default for $layout_mime"

echo "== the MIME database (/usr/share/mime/globs2) maps *.muxscope.ron"
grep -F ":$layout_mime:*.muxscope.ron" /usr/share/mime/globs2 && r=ok || r=bad
check $r "update-mime-database ran: *.muxscope.ron is $layout_mime"

echo "== recordings: $recording_mime"
default=$(xdg-mime query default "$recording_mime" || true)
echo "$default"
[ "$default" = muxscope.desktop ] && r=ok || r=bad
check $r "xdg-mime names muxscope.desktop as the default for $recording_mime"
grep -F ":$recording_mime:*.muxrec" /usr/share/mime/globs2 && r=ok || r=bad
check $r "update-mime-database ran: *.muxrec is $recording_mime"

echo "== muxscope --version (the installed /usr/bin/muxscope)"
want="muxscope $(cargo pkgid | sed 's/.*[#@]//')"
got=$(/usr/bin/muxscope --version 2>&1 || true)
echo "$got"
[ "$got" = "$want" ] && r=ok || r=bad
check $r "/usr/bin/muxscope --version prints '$want'"

if [ "$failed" -ne 0 ]; then
  echo "package check: $failed check(s) failed" >&2
  exit 1
fi
echo "package check: all checks passed"
