#!/usr/bin/env bash
# Builds procpool and runs the whole test suite with CTest.
#
# Usage: scripts/test.sh [CONFIG] [CTEST_ARG...]
#   CONFIG     default | asan | tsan | portable | clang (default: $PP_CONFIG, else
#              "default"). The same settings as the CMake presets of that
#              name:
#                default   RelWithDebInfo
#                asan      Debug, AddressSanitizer + UndefinedBehaviorSanitizer
#                tsan      RelWithDebInfo, ThreadSanitizer
#                portable  RelWithDebInfo, without GCC/Clang extensions: the
#                          core's fallbacks for MSVC (APR's atomics)
#                clang     RelWithDebInfo, built with clang (its warnings
#                          differ from GCC's, and warnings are errors)
#   CTEST_ARG  passed on to ctest, e.g. -R core
# Environment:
#   BUILD_DIR  build directory (default: build/CONFIG)
#   JOBS       parallel build jobs, and test runs at once (default: 2). The
#              suites wait on their pools' workers far more than they
#              compute, so two at once take about half the time; each is
#              a process of its own, and they pass under CPU load as well.
#
# Installs missing build dependencies first (see scripts/deps.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
config=${PP_CONFIG:-default}
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
  config=$1
  shift
fi

# gdb: a run that hangs prints every process's backtraces (tests/watchdog.c).
extra_pkgs=(gdb)
case "$config" in
default)
  cache=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPP_SANITIZE=
    -DPP_NO_COMPILER_EXTENSIONS=OFF)
  extra_pkgs+=(faketime) # the clock suite (tests/test_clock.c)
  ;;
asan)
  cache=(-DCMAKE_BUILD_TYPE=Debug "-DPP_SANITIZE=address,undefined"
    -DPP_NO_COMPILER_EXTENSIONS=OFF)
  ;;
tsan)
  cache=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPP_SANITIZE=thread
    -DPP_NO_COMPILER_EXTENSIONS=OFF)
  ;;
portable)
  cache=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPP_SANITIZE=
    -DPP_NO_COMPILER_EXTENSIONS=ON)
  extra_pkgs+=(faketime)
  ;;
clang)
  cache=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPP_SANITIZE=
    -DPP_NO_COMPILER_EXTENSIONS=OFF -DCMAKE_C_COMPILER=clang)
  extra_pkgs+=(clang faketime)
  ;;
*)
  echo "scripts/test.sh: unknown configuration '$config'" \
    "(expected default, asan, tsan, portable or clang)" >&2
  exit 2
  ;;
esac

build_dir=${BUILD_DIR:-$root/build/$config}
jobs=${JOBS:-2}

"$root/scripts/deps.sh" ${extra_pkgs[@]+"${extra_pkgs[@]}"}

echo "== configure ($config) in $build_dir"
cmake -S "$root" -B "$build_dir" "${cache[@]}" \
  -DPP_WERROR=ON -DPP_BUILD_TESTS=ON -DPP_BUILD_EXAMPLES=ON

echo "== build"
cmake --build "$build_dir" -j "$jobs"

echo "== test"
# (cd rather than --test-dir, which needs CMake 3.20)
cd "$build_dir"
ctest --output-on-failure -j "$jobs" "$@"
