#!/usr/bin/env bash
# Runs pp_soak (tests/soak/pp_soak.c) from a build made by scripts/test.sh:
# threads driving shared pools with a random mix of every call, in each
# start context, every outcome checked.
#
# Usage: scripts/soak.sh BUILD_DIR [SECONDS] [PP_SOAK_ARG...]
#   BUILD_DIR  a configured and built tree, e.g. build/tsan
#   SECONDS    per context (default 20)
# The sanitizer settings are CTest's. In an AddressSanitizer build the fork
# context is left out: that runtime does not take its own locks around
# fork() (the stack depot every malloc records into, for one: see
# google/sanitizers issue 774), so a worker forked while another thread
# allocates can inherit one taken and hang in malloc during its handshake
# (gdb: __asan::asan_malloc). The pool survives one such worker (its 10 s
# handshake limit), not nine in a row, which the soak's threads provoke.
# glibc's malloc, which fork() locks, has no such hazard: the fork context
# runs in the other builds.
# Exit status: pp_soak's (0 all checks held, 1 a check failed, 2 a hang).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: scripts/soak.sh BUILD_DIR [SECONDS] [PP_SOAK_ARG...]" >&2
  exit 2
fi
build_dir=$1
seconds=${2:-20}
shift $(($# >= 2 ? 2 : 1))
soak=$build_dir/pp_soak
[ -x "$soak" ] || cmake --build "$build_dir" --target pp_soak

sanitize=$(sed -n 's/^PP_SANITIZE:STRING=//p' "$build_dir/CMakeCache.txt")
contexts=()
case "$sanitize" in
*address*)
  export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1
  contexts=(--ctx spawn --ctx forkserver)
  echo "soak: AddressSanitizer build: the fork context is left out" \
    "(see scripts/soak.sh)"
  ;;
esac
case "$sanitize" in
*undefined*) export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
esac
case "$sanitize" in
*thread*) export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ;;
esac

"$soak" --seconds "$seconds" ${contexts[@]+"${contexts[@]}"} "$@"
