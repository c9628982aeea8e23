#!/usr/bin/env bash
# Builds procpool and its tests for 64-bit Windows with mingw-w64 and runs
# the whole test suite under Wine through CTest (spawn context: the only one
# Windows has), then the soak (tests/soak/pp_soak.c) for PP_SOAK_SECONDS.
# Called by .ci/run; runs on Debian 12 as root (or as a user with every
# package below installed).
#
# Usage: scripts/windows-test.sh [CTEST_ARG...]
# Environment:
#   PP_WIN_DEPS  cache of APR and CUnit cross-built for Windows, reused when
#                present (default: $HOME/.cache/procpool-win-deps)
#   BUILD_DIR    build directory (default: build/windows)
#   JOBS         parallel build jobs (default: 2)
#   PP_SOAK_SECONDS  how long the soak runs after the suite (default 10; 0:
#                not at all)
#
# APR and CUnit come from Debian's source packages (apt-get source), built
# once per version with the mingw-w64 toolchain (cmake/mingw-w64-x86_64.cmake).
# Wine runs headless in its own prefix inside the cache. Timings under Wine
# say nothing about Windows: every pipe operation is a round trip to
# wineserver.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/windows}
jobs=${JOBS:-2}
toolchain=$root/cmake/mingw-w64-x86_64.cmake
triple=x86_64-w64-mingw32

# The versions the recipe below was made for (APR's three patches are for
# 1.7.2). The cache is keyed on them and on the compiler's version.
apr_version=1.7.2
cunit_version=2.1-3

t_start=$(date +%s)
say() { printf '== %s (%ss)\n' "$*" "$(($(date +%s) - t_start))"; }
have() { command -v "$1" >/dev/null 2>&1; }
die() {
  echo "windows-test.sh: $*" >&2
  exit 1
}
# ensure_deb_src, build_cunit
# shellcheck source=scripts/debian-source.sh
. "$root/scripts/debian-source.sh"

# ---- packages ----

missing=()
have "$triple-gcc" || missing+=(gcc-mingw-w64-x86-64)
have wine64 || [ -x /usr/lib/wine/wine64 ] || missing+=(wine64)
have wine || missing+=(wine)
have cmake || missing+=(cmake)
have make || missing+=(make)
have pkg-config || missing+=(pkg-config)
have dpkg-source || missing+=(dpkg-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root)"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gcc_version=$("$triple-gcc" -dumpversion)
cache_root=${PP_WIN_DEPS:-${HOME:-/tmp}/.cache/procpool-win-deps}
deps=$cache_root/apr-$apr_version-cunit-$cunit_version-$triple-gcc$gcc_version

# ---- APR and CUnit for Windows, once ----

# Three small fixes for cross-building APR 1.7.2 with mingw-w64: run the
# generator tool through Wine, a header name's case (the file system is
# case-sensitive), and a version macro only MSVC's resource compiler
# understands. Each is checked, so a changed source fails here, clearly.
patch_apr() {
  local src=$1
  # shellcheck disable=SC2016 # CMake's ${...}, not the shell's
  sed -i 's|COMMAND \$<TARGET_FILE:gen_test_char>|COMMAND ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:gen_test_char>|' \
    "$src/CMakeLists.txt"
  sed -i 's|#include "ShellAPI.h"|#include <shellapi.h>|' \
    "$src/misc/win32/apr_app.c"
  sed -i '/^#define APR_VERSION_STRING_CSV APR_MAJOR_VERSION ##,/,/##APR_PATCH_VERSION$/c\
#define APR_VERSION_STRING_CSV APR_MAJOR_VERSION, APR_MINOR_VERSION, APR_PATCH_VERSION' \
    "$src/include/apr_version.h"
  if ! grep -q 'CROSSCOMPILING_EMULATOR} \$<TARGET_FILE:gen_test_char>' \
    "$src/CMakeLists.txt" ||
    ! grep -q '<shellapi.h>' "$src/misc/win32/apr_app.c" ||
    ! grep -q 'CSV APR_MAJOR_VERSION, APR_MINOR' "$src/include/apr_version.h"; then
    die "patching APR $apr_version failed: its sources changed"
  fi
}

build_deps() {
  ensure_deb_src
  local work=$cache_root/work
  rm -rf "$work"
  mkdir -p "$work"
  say "fetching the sources of APR and CUnit (apt-get source)"
  (cd "$work" && apt-get source -qq apr cunit >/dev/null 2>&1) ||
    (cd "$work" && apt-get source apr cunit) ||
    die "apt-get source apr cunit failed"
  local apr_src=$work/apr-$apr_version
  local cunit_src
  cunit_src=$(find "$work" -maxdepth 1 -type d -name "cunit-$cunit_version*" |
    head -n 1)
  [ -d "$apr_src" ] || die "expected APR $apr_version from apt-get source," \
    "got: $(ls "$work")"
  [ -n "$cunit_src" ] || die "expected CUnit $cunit_version from apt-get" \
    "source, got: $(ls "$work")"

  # Built in place (pkg-config files record the prefix); the stamp file
  # written last marks a complete build.
  local stage=$deps
  rm -rf "$stage"
  say "building APR $apr_version for Windows"
  patch_apr "$apr_src"
  # COM_NO_WINDOWS_H: mingw's COM headers clash with APR's NOUSER trick;
  # USE_ATOMICS_GENERIC: the CMake build lacks the file the GCC x86_64
  # atomics need (no effect on the Win32 Interlocked code); no IPv6: its
  # code expects MSVC's implicit iphlpapi, and the pool does not use it.
  cmake -S "$apr_src" -B "$work/build-apr" -G "Unix Makefiles" \
    -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$stage" -DMIN_WINDOWS_VER=Windows7 \
    -DAPR_HAVE_IPV6=OFF -DINSTALL_PDB=OFF \
    "-DCMAKE_C_FLAGS=-DCOM_NO_WINDOWS_H -DUSE_ATOMICS_GENERIC -w" \
    >"$work/apr-configure.log" 2>&1 ||
    { tail -n 40 "$work/apr-configure.log"; die "configuring APR failed"; }
  make -C "$work/build-apr" -j "$jobs" install >"$work/apr-build.log" 2>&1 ||
    { tail -n 40 "$work/apr-build.log"; die "building APR failed"; }

  say "building CUnit $cunit_version for Windows"
  build_cunit "$cunit_src" "$work" "$jobs" --host="$triple" --prefix="$stage"

  if [ ! -f "$stage/lib/libapr-1.a" ] || [ ! -f "$stage/lib/libcunit.a" ]; then
    die "the dependency build did not produce libapr-1.a and libcunit.a"
  fi
  # Only the static APR is used: the DLL's import library must not be
  # picked instead.
  rm -f "$stage"/lib/*.dll.a "$stage"/bin/*.dll
  touch "$deps/.complete"
  rm -rf "$work"
}

if [ -f "$deps/.complete" ]; then
  say "using APR and CUnit for Windows from $deps"
else
  mkdir -p "$cache_root"
  build_deps
fi

# ---- procpool for Windows ----

say "configuring procpool for Windows in $build_dir"
# The toolchain file shows pkg-config only the packages under the root path.
# APR is linked statically: APR_DECLARE_STATIC makes its headers say so.
cmake -S "$root" -B "$build_dir" -G "Unix Makefiles" \
  -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
  -DCMAKE_FIND_ROOT_PATH="$deps" -DCMAKE_PREFIX_PATH="$deps" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPP_WERROR=ON -DPP_BUILD_TESTS=ON \
  -DPP_BUILD_BENCH=OFF -DCMAKE_C_FLAGS=-DAPR_DECLARE_STATIC >/dev/null
# (The benchmarks are left out: timings under Wine say nothing about
# Windows.)

say "building"
cmake --build "$build_dir" -j "$jobs"

# ---- Wine ----

# A prefix of our own (created once, about 5 s), no debugger on crashes, no
# Mono or Gecko installers, and no noise on stderr.
export WINEPREFIX=${WINEPREFIX:-$cache_root/wineprefix}
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY

stop_wine() { wineserver -k >/dev/null 2>&1 || true; }
trap stop_wine EXIT

# Wine's services (services.exe, rpcss, ...) start with the first program of
# a prefix and inherit that program's standard streams: started by a test,
# they would hold CTest's output pipe open and stall it. So they start here,
# with their streams elsewhere, and stop after the tests.
say "starting Wine's services (WINEPREFIX=$WINEPREFIX)"
mkdir -p "$WINEPREFIX"
wineserver -p </dev/null >/dev/null 2>&1
wineboot </dev/null >/dev/null 2>&1
# An unhandled exception outside a worker (a worker ends itself quietly)
# must not start winedbg: it would print a hundred lines and linger.
wine reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' \
  /v Debugger /d '' /f </dev/null >/dev/null 2>&1 || true

say "testing under Wine"
status=0
(cd "$build_dir" && ctest --output-on-failure "$@") || status=$?
soak_seconds=${PP_SOAK_SECONDS:-10}
if [ "$status" -eq 0 ] && [ "$soak_seconds" -gt 0 ]; then
  say "soak under Wine, $soak_seconds s"
  (cd "$build_dir" && wine ./pp_soak.exe --seconds "$soak_seconds" \
    </dev/null) || status=$?
fi
stop_wine
say "done"
exit "$status"
