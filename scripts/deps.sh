#!/usr/bin/env bash
# Installs what procpool needs to build and test, if it is missing, on
# Debian or Ubuntu: a C compiler and make, CMake, pkg-config, APR and CUnit.
#
# Usage: scripts/deps.sh [EXTRA_PACKAGE...]
#   Extra Debian package names (e.g. clang-format) are checked and installed
#   along with the rest.
#
# As root it runs apt-get; otherwise it prints the apt-get command to run and
# exits 1.
set -euo pipefail

missing=()

need_pkg() { # need_pkg PACKAGE TEST-COMMAND...
  local pkg=$1
  shift
  if ! "$@" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
}

have() { command -v "$1" >/dev/null 2>&1; }
pc_has() { have pkg-config && pkg-config --exists "$1"; }
cmake_new_enough() { # CMake >= 3.16
  local major minor
  IFS=. read -r major minor _ < <(cmake --version 2>/dev/null |
    sed -n '1s/^cmake version //p')
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  ((major > 3 || (major == 3 && minor >= 16)))
}
compiler_ok() { have cc && have make; }
dpkg_has() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need_pkg build-essential compiler_ok
need_pkg cmake cmake_new_enough
need_pkg pkg-config have pkg-config
need_pkg libapr1-dev pc_has apr-1
need_pkg libcunit1-dev pc_has cunit
for extra in "$@"; do
  # An extra package is present if dpkg knows it or a command of that name
  # exists (e.g. clang-format).
  if ! dpkg_has "$extra" && ! have "$extra"; then
    missing+=("$extra")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"

if ! have apt-get; then
  echo "procpool: missing: ${missing[*]}" >&2
  echo "procpool: apt-get not found; install the equivalent packages with" \
    "your system's package manager." >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "procpool: missing packages: ${missing[*]}" >&2
  echo "procpool: run as root (or with sudo):" >&2
  echo "    apt-get update && $install_cmd" >&2
  exit 1
fi

echo "procpool: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
