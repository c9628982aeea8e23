#!/usr/bin/env bash
# Line coverage of the library by the test suite: builds with gcov
# instrumentation (CMake option PP_COVERAGE, Debug), runs every suite in every
# start context, and prints for each file of src/ the lines run and the
# functions never entered.
# Workers and launchers write their counts too (src/posix/coverage.h), so the
# worker's side of the library is counted, not only the parent's.
#
# Usage: scripts/coverage.sh [--min PERCENT] [CTEST_ARG...]
#   --min      fail when fewer than PERCENT of the lines of src/ ran (CI:
#              .ci/run sets the floor)
#   CTEST_ARG  passed on to ctest, e.g. -R imap
# Environment:
#   BUILD_DIR  build directory (default: build/coverage)
#   JOBS       parallel build jobs (default: 2)
# Output: the table on stdout, also in $BUILD_DIR/coverage.txt.
#
# Counts of processes that were killed (the reliability suite kills workers
# on purpose) are lost with them; everything else is counted.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build/coverage}
jobs=${JOBS:-2}
min=0
if [ "${1:-}" = --min ]; then
  min=${2:?scripts/coverage.sh: --min needs a percentage}
  shift 2
fi

# python3: the summary below (standard library only); gcov comes with GCC.
"$root/scripts/deps.sh" python3

echo "== configure (coverage) in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Debug -DPP_SANITIZE= \
  -DPP_NO_COMPILER_EXTENSIONS=OFF -DPP_COVERAGE=ON -DPP_WERROR=ON \
  -DPP_BUILD_TESTS=ON -DPP_BUILD_EXAMPLES=OFF -DPP_BUILD_BENCH=OFF >/dev/null
echo "== build"
cmake --build "$build_dir" -j "$jobs"

# Counts add up across runs: start from none.
find "$build_dir" -name '*.gcda' -delete

echo "== test"
# A failing test still leaves its counts; the coverage is printed either way
# and the script then fails.
status=0
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" "$@" || status=$?

echo "== coverage of src/"
python3 - "$root" "$build_dir" "$min" <<'PY' | tee "$build_dir/coverage.txt"
# Every .gcda through `gcov --json-format --stdout`; a line counts as run
# when any object file's data says so. Per file of src/: lines run of lines
# with code, and the functions never entered.
import json, os, subprocess, sys

root, build, floor = sys.argv[1], sys.argv[2], float(sys.argv[3])
src = os.path.join(root, "src") + os.sep
lines, funcs = {}, {}
for d, _, names in os.walk(build):
    for n in sorted(x for x in names if x.endswith(".gcda")):
        out = subprocess.run(["gcov", "--json-format", "--stdout", n],
                             cwd=d, capture_output=True, text=True).stdout
        for doc in filter(None, out.splitlines()):
            for f in json.loads(doc)["files"]:
                path = os.path.normpath(os.path.join(d, f["file"]))
                if not path.startswith(src):
                    continue
                ls = lines.setdefault(path, {})
                for l in f["lines"]:
                    k = l["line_number"]
                    ls[k] = ls.get(k, 0) or l["count"]
                fs = funcs.setdefault(path, {})
                for fn in f["functions"]:
                    k = fn["name"]
                    fs[k] = fs.get(k, 0) or fn["execution_count"]
total_run = total = 0
print("%-28s %7s %7s %6s  %s" % ("file", "lines", "run", "%", "functions never run"))
for path in sorted(lines):
    ls = lines[path]
    run = sum(1 for c in ls.values() if c)
    total_run += run
    total += len(ls)
    never = sorted(k for k, c in funcs[path].items() if not c)
    print("%-28s %7d %7d %5.1f%%  %s" % (os.path.relpath(path, src), len(ls),
          run, 100.0 * run / max(len(ls), 1), ", ".join(never)))
share = 100.0 * total_run / max(total, 1)
print("%-28s %7d %7d %5.1f%%" % ("total", total, total_run, share))
if not total or share < floor:
    print("coverage: %.1f%% of the lines of src/ ran, under the floor of "
          "%.1f%%" % (share, floor))
    sys.exit(1)
PY
exit "$status"
