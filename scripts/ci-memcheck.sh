#!/usr/bin/env bash
# Runs test suites under Valgrind's memcheck, the parent and every worker
# it forks: reads of uninitialised memory (which neither ASan nor UBSan
# sees), invalid accesses, and memory a process leaves definitely lost when
# it ends. Any such report in any process fails the run.
#
# Usage: scripts/ci-memcheck.sh [SUITE...]
#   Default: the suites below. Each process writes its own log; the logs of
#   processes with errors are printed.
#
# Left out, as memcheck cannot run them (they run in the three other
# builds: default, ASan + UBSan, TSan):
#   - the spawn context: memcheck does not start again in an executable
#     re-launched by a worker of a program it runs (its loader fails to map
#     itself), so the suites that start spawn pools (options, contexts)
#     fail under it for that reason alone;
#   - backend: its descriptor-leak tests count the descriptors a worker
#     holds, and see memcheck's log file among them.
# Under memcheck pidfd_open() is an unknown system call, so a fork pool
# takes every worker from the launcher, as on Linux before 5.3.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/default}
jobs=${JOBS:-2}
suites=("$@")
if [ "${#suites[@]}" -eq 0 ]; then
  suites=(core results map imap lifecycle errors reliability lanes
    records_task in_place rings)
fi

"$root/scripts/deps.sh" valgrind

echo "== configure and build (RelWithDebInfo) in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPP_SANITIZE= -DPP_WERROR=ON -DPP_BUILD_TESTS=ON >/dev/null
cmake --build "$build_dir" -j "$jobs" --target pp_tests

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
for suite in "${suites[@]}"; do
  start=$SECONDS
  mkdir -p "$logs/$suite"
  # The suppressions: the one invalid write a test makes on purpose.
  if ! valgrind --trace-children=yes --error-exitcode=99 \
    --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite \
    --suppressions="$root/tests/memcheck.supp" \
    --log-file="$logs/$suite/%p.log" \
    "$build_dir/pp_tests" --suite "$suite" >"$logs/$suite/out.txt" 2>&1; then
    echo "== $suite: the suite failed under memcheck"
    cat "$logs/$suite/out.txt"
    failed=1
  fi
  # A worker's errors do not reach the suite's exit code, and a worker the
  # pool kills at its end never exits to say how many it had: every
  # process's log is read. memcheck reports each error, as it happens, as
  # a block with a stack ("at 0x...", "by 0x..."); a leak at the exit of a
  # process that exits too. The one other block with a stack tells of a
  # process ending on a signal, as the tests' crashing workers do.
  bad=
  for f in "$logs/$suite"/*.log; do
    if awk '
      { sub(/^==[0-9]+== ?/, "") }
      /^$/ { if (stack && first !~ /^Process terminating/) found = 1
             first = ""; stack = 0; next }
      first == "" { first = $0 }
      /^ +(at|by) 0x/ { stack = 1 }
      END { if (stack && first !~ /^Process terminating/) found = 1
            exit !found }
    ' "$f"; then
      bad="$bad $f"
    fi
  done
  if [ -n "$bad" ]; then
    echo "== $suite: memcheck reports"
    for f in $bad; do
      echo "-- process $(basename "$f" .log)"
      cat "$f"
    done
    failed=1
  fi
  nprocs=$(find "$logs/$suite" -name '*.log' | wc -l)
  nexit=$(grep -l 'ERROR SUMMARY' "$logs/$suite"/*.log | wc -l || true)
  echo "== $suite: $nprocs processes, $nexit checked for leaks as they" \
    "exited, $((SECONDS - start)) s"
done
if [ "$failed" -ne 0 ]; then
  echo "memcheck: errors found" >&2
  exit 1
fi
echo "memcheck: no errors in ${#suites[@]} suites"
