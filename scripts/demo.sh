#!/usr/bin/env bash
# Builds procpool and runs the demo: primes counted serially and through a
# pool of worker processes, with the wall times and the speed-up.
#
# Usage: scripts/demo.sh [DEMO_ARG...]   (see: scripts/demo.sh --help)
# Environment:
#   BUILD_DIR  build directory (default: build/default)
#   JOBS       parallel build jobs (default: 2)
#
# Installs missing build dependencies first (see scripts/deps.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/default}
jobs=${JOBS:-2}

"$root/scripts/deps.sh"

echo "== configure in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPP_SANITIZE= -DPP_WERROR=ON -DPP_BUILD_TESTS=ON -DPP_BUILD_EXAMPLES=ON

echo "== build"
cmake --build "$build_dir" -j "$jobs" --target pp_demo

echo "== run"
exec "$build_dir/examples/pp_demo" "$@"
