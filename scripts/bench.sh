#!/usr/bin/env bash
# Runs the benchmarks: the machine's raw limits (bench/raw_ipc.c), then for
# each start context and each case procpool (bench/pool_bench.c) and right
# after it Python's multiprocessing.Pool and ProcessPoolExecutor
# (bench/peer_python.py), on this machine; then prints one table of ratios
# (bench/report.py).
#
# Usage: scripts/bench.sh [--quick]
#   --quick    every case scaled down, one round unless ROUNDS says: a smoke
#              run, numbers only indicative
# Environment:
#   BUILD_DIR  build directory (default: build/bench), built Release
#   JOBS       parallel build jobs (default: 2)
#   ROUNDS     rounds of each case's two sides, procpool and mp.Pool, each
#              in a fresh process (default: 3); the report takes the median
# Output: $BUILD_DIR/results.jsonl (one JSON line per measurement),
#         $BUILD_DIR/bench.log (notes), $BUILD_DIR/report.md (the table).
#
# The full run takes several minutes. Run it on an otherwise idle machine:
# the load average is printed with the results, since it moves them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/bench}
jobs=${JOBS:-2}
rounds=${ROUNDS:-3}
quick=()
case "${1:-}" in
"") ;;
--quick)
  quick=(--quick)
  rounds=${ROUNDS:-1}
  ;;
*)
  echo "usage: scripts/bench.sh [--quick]" >&2
  exit 2
  ;;
esac
if ! [[ $rounds =~ ^[1-9][0-9]?$ ]]; then
  echo "scripts/bench.sh: ROUNDS must be a number from 1 to 99, not '$rounds'" >&2
  exit 2
fi

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
  echo "- rounds of each case (procpool and mp.Pool): $rounds"
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
# Case by case, each peer right after procpool: a ratio's two sides are
# measured seconds apart, not minutes, so that a slow or fast spell of the
# machine (they last minutes on a shared host) moves both sides alike.
# Each run of a case is a fresh process and a fresh pool: the case's untimed
# first run is the pool's first use. A process keeps the placement of its
# threads on the vCPUs it started with, which can set its speed for all its
# runs; so the two sides are measured in $rounds rounds, alternating, and the
# report takes each side's median. ProcessPoolExecutor (context, no target)
# and the peak RSS cases (a memory bound, far from its line) run once.
pp_cases=$("$build_dir/bench/pp_bench" --list)
py_cases=$(python3 "$root/bench/peer_python.py" --list)
for ctx in fork spawn forkserver; do
  for case in $pp_cases; do
    case_rounds=$rounds
    [[ $case == imap_peak_rss_* ]] && case_rounds=1
    for ((round = 1; round <= case_rounds; round++)); do
      run "procpool, $ctx, $case, round $round" "$build_dir/bench/pp_bench" \
        --ctx "$ctx" --case "$case" "${quick[@]}"
      if ! grep -qx "$case" <<<"$py_cases"; then
        continue # procpool's own (batches, records tasks): no peer
      fi
      run "mp.Pool, $ctx, $case, round $round" python3 \
        "$root/bench/peer_python.py" --peer mp.Pool --ctx "$ctx" \
        --case "$case" "${quick[@]}"
      if ((round == 1)); then
        run "ProcessPoolExecutor, $ctx, $case" python3 \
          "$root/bench/peer_python.py" --peer ProcessPoolExecutor \
          --ctx "$ctx" --case "$case" "${quick[@]}"
      fi
    done
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
