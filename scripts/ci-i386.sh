#!/usr/bin/env bash
# Builds procpool and its tests as a 32-bit x86 Linux program (gcc -m32:
# size_t, long and pointers of 32 bits, as on i686 Windows and 32-bit Linux)
# and runs the whole test suite with CTest, in every start context.
# Runs on Debian 12 amd64 as root (or as a user with every package below
# installed), after `apt-get update`.
#
# Usage: scripts/ci-i386.sh [CTEST_ARG...]     e.g. -R 'map|rings'
# Environment:
#   BUILD_DIR  build directory (default: build/i386)
#   DEPS_DIR   32-bit APR and CUnit, made once and reused (default:
#              build/i386-deps)
#   JOBS       parallel build jobs, and test runs at once (default: 2)
#   PP_SANITIZE  e.g. address,undefined (gcc-multilib has 32-bit ASan and
#              UBSan runtimes; there is no 32-bit TSan)
#
# Neither libapr1-dev nor libcunit1-dev is Multi-Arch: same: installing
# their i386 packages would remove the amd64 ones that the other builds on
# the machine need. So both go to a private prefix instead: APR from
# Debian's own i386 packages, downloaded and unpacked (apt-get download:
# i386 is added to dpkg's architectures for its index, but nothing i386 is
# installed), and CUnit built from Debian's source package with gcc -m32,
# as scripts/windows-test.sh does for mingw. The test programs find the
# 32-bit libapr-1.so and libuuid.so.1 there through their RPATH.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/i386}
deps_root=${DEPS_DIR:-$root/build/i386-deps}
jobs=${JOBS:-2}
sanitize=${PP_SANITIZE:-}

# The versions this recipe was made for (Debian 12); the cache is keyed on
# them.
apr_version=1.7.2
cunit_version=2.1-3

t_start=$(date +%s)
say() { printf '== %s (%ss)\n' "$*" "$(($(date +%s) - t_start))"; }
have() { command -v "$1" >/dev/null 2>&1; }
die() {
  echo "ci-i386.sh: $*" >&2
  exit 1
}
# ensure_deb_src, build_cunit
# shellcheck source=scripts/debian-source.sh
. "$root/scripts/debian-source.sh"
dpkg_has() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}
as_root() { [ "$(id -u)" -eq 0 ] || die "$* (run as root)"; }

# ---- packages ----

missing=()
dpkg_has gcc-multilib || missing+=(gcc-multilib)
have cmake || missing+=(cmake)
have make || missing+=(make)
have pkg-config || missing+=(pkg-config)
have dpkg-source || missing+=(dpkg-dev)
# A hang prints every process's backtraces with gdb (tests/watchdog.c).
have gdb || missing+=(gdb)
if [ "${#missing[@]}" -gt 0 ]; then
  as_root "missing packages: ${missing[*]}"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deps=$deps_root/apr-$apr_version-cunit-$cunit_version-gcc$(gcc -dumpversion)-m32

# ---- APR and CUnit, 32-bit, once ----

# apt-get download of i386 packages needs i386 in dpkg's architectures and
# its index; nothing i386 gets installed.
ensure_i386_index() {
  if apt-cache show libapr1-dev:i386 >/dev/null 2>&1; then
    return
  fi
  as_root "no i386 package index (dpkg --add-architecture i386)"
  say "adding the i386 architecture to dpkg"
  dpkg --add-architecture i386
  # A mirror in sync on the packages used here is enough: an error on
  # another index (e.g. a security suite being synced) is not fatal.
  apt-get update -qq || true
  apt-cache show libapr1-dev:i386 >/dev/null 2>&1 ||
    die "apt has no i386 package index even after apt-get update"
}

build_deps() {
  local work=$deps_root/work
  rm -rf "$work" "$deps"
  mkdir -p "$work/debs" "$work/root" "$deps/lib/pkgconfig" "$deps/include"

  ensure_i386_index
  say "fetching Debian's i386 APR $apr_version and libfaketime" \
    "(apt-get download)"
  # libuuid1: libapr-1.so's one dependency besides libc.
  (cd "$work/debs" &&
    apt-get download -q libapr1:i386 libapr1-dev:i386 libuuid1:i386 \
      libfaketime:i386 >"$work/download.log" 2>&1) ||
    { cat "$work/download.log"; die "apt-get download failed"; }
  local deb
  for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
  done
  local multi=$work/root/usr/lib/i386-linux-gnu
  local f
  for f in "$multi/libapr-1.so.0" "$multi/libuuid.so.1" \
    "$multi/faketime/libfaketime.so.1" "$work/root/usr/include/apr-1.0/apr.h"; do
    [ -f "$f" ] || die "the downloaded packages did not hold $f"
  done
  grep -q '^Version: '"$apr_version"'$' "$multi/pkgconfig/apr-1.pc" ||
    die "expected APR $apr_version, got:" \
      "$(sed -n 's/^Version: //p' "$multi/pkgconfig/apr-1.pc")"
  cp -a "$multi"/libapr-1.so* "$multi"/libuuid.so.1* "$deps/lib/"
  mkdir -p "$deps/lib/faketime" "$deps/bin"
  cp -a "$multi"/faketime/libfaketime.so.1 "$deps/lib/faketime/"
  # The clock suite's faketime (PP_FAKETIME, called as "faketime -f SPEC
  # COMMAND..."): faketime (amd64) preloads /usr/$LIB/faketime/
  # libfaketime.so.1, which a 32-bit program's loader finds nowhere, and
  # the clock it shares with its children is laid out for 64 bits. This
  # stand-in preloads the 32-bit library with the same FAKETIME, each
  # process's fake clock starting from its own start.
  cat >"$deps/bin/faketime-m32" <<WRAPPER
#!/bin/sh
[ "\$1" = -f ] || { echo "faketime-m32: usage: -f SPEC COMMAND..." >&2; exit 2; }
FAKETIME=\$2
LD_PRELOAD=$deps/lib/faketime/libfaketime.so.1
export FAKETIME LD_PRELOAD
shift 2
exec "\$@"
WRAPPER
  chmod +x "$deps/bin/faketime-m32"
  cp -a "$work/root/usr/include/apr-1.0" "$deps/include/"
  # The package's apr-1.pc names /usr: it is rewritten for the prefix.
  sed -e "s|^libdir=.*|libdir=$deps/lib|" \
    -e "s|^includedir=.*|includedir=$deps/include/apr-1.0|" \
    "$multi/pkgconfig/apr-1.pc" >"$deps/lib/pkgconfig/apr-1.pc"

  ensure_deb_src
  say "fetching the source of CUnit (apt-get source)"
  (cd "$work" && apt-get source -qq cunit >/dev/null 2>&1) ||
    (cd "$work" && apt-get source cunit) ||
    die "apt-get source cunit failed"
  local cunit_src
  cunit_src=$(find "$work" -maxdepth 1 -type d -name "cunit-$cunit_version*" |
    head -n 1)
  [ -n "$cunit_src" ] || die "expected CUnit $cunit_version from apt-get" \
    "source, got: $(ls "$work")"

  say "building CUnit $cunit_version, 32-bit"
  build_cunit "$cunit_src" "$work" "$jobs" --build=x86_64-pc-linux-gnu \
    --host=i686-pc-linux-gnu CC="gcc -m32" --prefix="$deps"
  [ -f "$deps/lib/libcunit.a" ] || die "the CUnit build made no libcunit.a"

  touch "$deps/.complete"
  rm -rf "$work"
}

if [ -f "$deps/.complete" ]; then
  say "using 32-bit APR and CUnit from $deps"
else
  build_deps
fi

# ---- procpool, 32-bit ----

# Only the 32-bit packages are visible to pkg-config: the prefix's, then the
# system's i386 ones.
export PKG_CONFIG_LIBDIR=$deps/lib/pkgconfig:/usr/lib/i386-linux-gnu/pkgconfig

config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ -n "$sanitize" ]; then
  config=(-DCMAKE_BUILD_TYPE=Debug)
fi
say "configuring procpool, 32-bit, in $build_dir"
# An RPATH (not a RUNPATH, which the loader does not use for a library's
# own dependencies) finds libapr-1.so and, for it, libuuid.so.1.
cmake -S "$root" -B "$build_dir" "${config[@]}" \
  -DCMAKE_C_FLAGS=-m32 \
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags,-rpath,$deps/lib" \
  "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags,-rpath,$deps/lib" \
  -DPP_FAKETIME="$deps/bin/faketime-m32" \
  -DPP_SANITIZE="$sanitize" -DPP_WERROR=ON -DPP_BUILD_TESTS=ON \
  -DPP_BUILD_EXAMPLES=ON -DPP_BUILD_BENCH=ON >/dev/null

say "building"
cmake --build "$build_dir" -j "$jobs"

# (The ELF header's class byte: 1 for 32-bit.)
[ "$(od -An -tx1 -j4 -N1 "$build_dir/pp_tests")" = " 01" ] ||
  die "$build_dir/pp_tests is not a 32-bit program"

say "testing, 32-bit"
status=0
(cd "$build_dir" && ctest --output-on-failure -j "$jobs" "$@") || status=$?
say "done"
exit "$status"
