#!/usr/bin/env bash
# A smoke run of the benchmarks, so that they never rot: builds pp_bench and
# pp_bench_raw, runs them and the Python peer with --quick (each under a
# time limit), and checks that every line they print is a JSON object with
# the five keys. Speed is not judged here: the numbers of a smoke run on a
# busy CI machine mean nothing. The real run is scripts/bench.sh.
#
# Environment:
#   BUILD_DIR  build directory (default: build/bench-smoke)
#   JOBS       parallel build jobs (default: 2)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/bench-smoke}
jobs=${JOBS:-2}

# python3: the Python peer and the output check.
"$root/scripts/deps.sh" python3

echo "== configure in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPP_SANITIZE= -DPP_WERROR=ON -DPP_BUILD_TESTS=OFF \
  -DPP_BUILD_EXAMPLES=OFF -DPP_BUILD_BENCH=ON >/dev/null
echo "== build"
cmake --build "$build_dir" -j "$jobs" --target pp_bench pp_bench_raw

out=$build_dir/smoke.jsonl
: >"$out"
run() { # run NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  local start=$SECONDS
  if ! timeout --kill-after=10 "$limit" "$@" >>"$out"; then
    echo "ci-bench-smoke: $name failed or ran over ${limit} s" >&2
    exit 1
  fi
  echo "   $((SECONDS - start)) s"
}
run "pp_bench_raw --quick" 60 "$build_dir/bench/pp_bench_raw" --quick
run "pp_bench --quick" 120 "$build_dir/bench/pp_bench" --quick
run "peer_python.py --quick" 180 python3 "$root/bench/peer_python.py" --quick

echo "== check the case lists"
# scripts/bench.sh runs the cases procpool lists and the peer's of the same
# names: a peer case procpool lacks would silently have no ratio.
missing=$(comm -13 <("$build_dir/bench/pp_bench" --list | sort) \
  <(python3 "$root/bench/peer_python.py" --list | sort))
if [ -n "$missing" ]; then
  echo "ci-bench-smoke: peer cases procpool does not list: $missing" >&2
  exit 1
fi

echo "== check the output"
python3 - "$out" <<'PY'
import json
import sys

KEYS = {"peer", "ctx", "case", "value", "unit"}
path = sys.argv[1]
lines = [l for l in open(path).read().splitlines()]
bad = 0
peers = set()
for n, line in enumerate(lines, 1):
    try:
        d = json.loads(line)
        ok = (isinstance(d, dict) and set(d) == KEYS
              and isinstance(d["value"], (int, float))
              and all(isinstance(d[k], str) for k in KEYS - {"value"}))
    except ValueError:
        ok = False
    if not ok:
        print("line %d is not a result: %r" % (n, line))
        bad += 1
    else:
        peers.add(d["peer"])
for peer in ("procpool", "raw", "mp.Pool", "ProcessPoolExecutor"):
    if peer not in peers:
        print("no result from %s" % peer)
        bad += 1
print("%d lines, %d bad" % (len(lines), bad))
sys.exit(1 if bad else 0)
PY
python3 "$root/bench/report.py" "$out" >/dev/null
echo "benchmark smoke run passed"
