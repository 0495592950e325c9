# shellcheck shell=bash
# Sourced by the scripts that change the system (scripts/check-package.sh):
# running a command as root, and installing missing Debian/Ubuntu packages.
# The one place that knows about root, sudo and apt-get.

# as_root CMD ARGS...: runs CMD as root, with sudo when not root already.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "error: '$*' needs root, and sudo is not installed: run this script as root" >&2
    return 1
  fi
}

# apt_need PKG...: installs the named Debian/Ubuntu packages that are not
# installed yet (without their recommends), and says clearly what to do when
# it cannot.
apt_need() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "error: needs the packages ${missing[*]} (Debian/Ubuntu names) and there is no apt-get here: install them with your package manager" >&2
    return 1
  fi
  echo "installing with apt-get: ${missing[*]}"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
     ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "error: could not install ${missing[*]}: install them as root ('apt-get install ${missing[*]}'), then run this again" >&2
    return 1
  fi
}
