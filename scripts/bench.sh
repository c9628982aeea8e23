#!/usr/bin/env bash
# Runs the benchmarks: the machine's raw limits (bench/raw_ipc.c), then for
# each start context procpool (bench/pool_bench.c) and right after it
# Python's multiprocessing.Pool and ProcessPoolExecutor
# (bench/peer_python.py), on this machine; then prints one table of ratios
# (bench/report.py).
#
# Usage: scripts/bench.sh [--quick]
#   --quick    every case scaled down: a smoke run, numbers only indicative
# Environment:
#   BUILD_DIR  build directory (default: build/bench), built Release
#   JOBS       parallel build jobs (default: 2)
# Output: $BUILD_DIR/results.jsonl (one JSON line per measurement),
#         $BUILD_DIR/bench.log (notes), $BUILD_DIR/report.md (the table).
#
# The full run takes several minutes. Run it on an otherwise idle machine:
# the load average is printed with the results, since it moves them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/bench}
jobs=${JOBS:-2}
quick=()
case "${1:-}" in
"") ;;
--quick) quick=(--quick) ;;
*)
  echo "usage: scripts/bench.sh [--quick]" >&2
  exit 2
  ;;
esac

# python3: the Python peer and the report (standard library only).
"$root/scripts/deps.sh" python3

echo "== configure (Release) in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPP_SANITIZE= \
  -DPP_WERROR=ON -DPP_BUILD_TESTS=OFF -DPP_BUILD_EXAMPLES=OFF \
  -DPP_BUILD_BENCH=ON >/dev/null
echo "== build"
cmake --build "$build_dir" -j "$jobs" --target pp_bench pp_bench_raw

results=$build_dir/results.jsonl
log=$build_dir/bench.log
report=$build_dir/report.md
: >"$results"
: >"$log"

machine() {
  echo "- nproc: $(nproc)"
  echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo |
    head -n 1)"
  echo "- memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' \
    /proc/meminfo 2>/dev/null)"
  echo "- kernel: $(uname -sr)"
  echo "- python: $(python3 --version 2>&1)"
  echo "- load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
}

run() { # run NAME COMMAND...: appends its JSON lines, its notes to the log
  local name=$1
  shift
  echo "== $name"
  local start=$SECONDS
  if ! "$@" >>"$results" 2>>"$log"; then
    echo "scripts/bench.sh: $name failed; see $log" >&2
    exit 1
  fi
  echo "   $((SECONDS - start)) s"
}

before=$(machine)
echo "== machine"
echo "$before"
run "raw limits (pp_bench_raw)" "$build_dir/bench/pp_bench_raw" "${quick[@]}"
# Context by context, each peer right after procpool: a ratio's two sides
# are measured a minute apart at most, not several, so that a slow or
# fast spell of the machine (they last minutes on a shared host) moves both
# sides of it alike. Each side still runs its cases in one pool, in the
# same order as before.
for ctx in fork spawn forkserver; do
  run "procpool, $ctx (pp_bench)" "$build_dir/bench/pp_bench" --ctx "$ctx" \
    "${quick[@]}"
  for peer in mp.Pool ProcessPoolExecutor; do
    run "$peer, $ctx (peer_python.py)" python3 "$root/bench/peer_python.py" \
      --peer "$peer" --ctx "$ctx" "${quick[@]}"
  done
done

{
  echo "Machine:"
  echo
  echo "$before" | sed 's/^- load average:/- load average before the run:/'
  echo "- load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  python3 "$root/bench/report.py" "$results"
} >"$report"
echo
cat "$report"
echo
echo "results: $results"
echo "notes:   $log"
