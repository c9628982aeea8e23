#!/usr/bin/env bash
# Checks procpool's packaging from this checkout, the way a user meets it:
#
#   1. static library (the default): configure, build, `cmake --install` to a
#      temporary prefix; build and run examples/consumer-cmake
#      (find_package; a C and a C++ program, built with the default
#      compilers and with clang) and examples/consumer-pkgconfig
#      (pkg-config) against that prefix.
#   2. shared library (-DBUILD_SHARED_LIBS=ON): the same, to another prefix;
#      then the exported symbols (`nm -D --defined-only`) must be exactly the
#      functions procpool.h declares with PP_API, and the SONAME must carry
#      the major version.
#   3. the API reference: the `docs` target (Doxygen) must run without a
#      single warning and document every public function.
#   4. in-tree: examples/consumer-subdir builds procpool with
#      add_subdirectory, CUnit hidden from CMake; only the library may come
#      with it (no test registered in the consumer's CTest, no test,
#      example or benchmark program built), and the consumer must run.
#
# Usage: scripts/ci-packaging.sh
# Environment:
#   BUILD_DIR  where the two builds go (default: build/packaging; emptied)
#   JOBS       parallel build jobs (default: 2)
#
# Installs missing dependencies (and doxygen, g++) first, see scripts/deps.sh.
set -euo pipefail
export LC_ALL=C # one collation for sort and comm

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_root=${BUILD_DIR:-$root/build/packaging}
jobs=${JOBS:-2}

# g++ and clang: the C++ consumer, built with each
"$root/scripts/deps.sh" doxygen g++ clang

work=$(mktemp -d "${TMPDIR:-/tmp}/procpool-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$build_root"
mkdir -p "$build_root"

started=$SECONDS
step_started=$SECONDS
step() {
  printf '\n-- %s\n' "$*"
}
timed() { # timed LABEL: prints the time since the previous mark
  printf -- '-- %s: %ds\n' "$1" $((SECONDS - step_started))
  step_started=$SECONDS
}
fail() {
  echo "ci-packaging: FAILED: $*" >&2
  exit 1
}

# The functions procpool.h declares with PP_API, one per line, sorted.
public_functions() { # public_functions HEADER
  sed -n 's/^PP_API .*[ *]\(pp_[a-z0-9_]*\)(.*/\1/p' "$1" | sort -u
}

# Configures, builds and installs procpool with BUILD_SHARED_LIBS=$2 into
# $work/$1/prefix (with `cmake --install --prefix`, so that nothing depends on
# the configured prefix).
build_and_install() { # build_and_install NAME ON|OFF
  local name=$1 shared=$2
  local bdir=$build_root/$name prefix=$work/$name/prefix
  step "$name: configure, build, install to $prefix"
  cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBUILD_SHARED_LIBS="$shared" -DPP_WERROR=ON \
    -DPP_BUILD_TESTS=OFF -DPP_BUILD_EXAMPLES=OFF -DPP_BUILD_BENCH=OFF \
    >"$bdir.configure.log" ||
    {
      cat "$bdir.configure.log"
      fail "$name: configure"
    }
  cmake --build "$bdir" -j "$jobs"
  cmake --install "$bdir" --prefix "$prefix"
  echo "installed:"
  (cd "$prefix" && find . \( -type f -o -type l \) | sort | sed 's/^\./  /')
  timed "$name: build and install"
}

# Builds both consumer examples against the package in $work/$1/prefix and
# runs them.
check_consumers() { # check_consumers NAME
  local name=$1 prefix=$work/$1/prefix
  local pc libdir
  pc=$(find "$prefix" -name procpool.pc -print -quit)
  [ -n "$pc" ] || fail "$name: no procpool.pc installed"
  libdir=$(dirname "$(dirname "$pc")")

  step "$name: examples/consumer-cmake, find_package(procpool) from $prefix"
  local cdir=$work/$name/consumer-cmake
  cmake -S "$root/examples/consumer-cmake" -B "$cdir" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo | tee "$cdir.log"
  grep -q "procpool .* from $prefix/" "$cdir.log" ||
    fail "$name: find_package(procpool) did not find the package in $prefix"
  cmake --build "$cdir"
  # The executables find a shared libprocpool through their build RPATH.
  "$cdir/consumer" || fail "$name: consumer-cmake"
  "$cdir/consumer_cxx" || fail "$name: consumer-cmake, C++ (main.cpp)"
  # clang warns where g++ does not (an old-style cast in the header's
  # inline code, say): the consumers again, built with clang.
  cmake -S "$root/examples/consumer-cmake" -B "$cdir-clang" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ >"$cdir-clang.log"
  cmake --build "$cdir-clang"
  "$cdir-clang/consumer_cxx" ||
    fail "$name: consumer-cmake, C++ (main.cpp) built with clang"

  step "$name: examples/consumer-pkgconfig, pkg-config from $libdir/pkgconfig"
  local pdir=$work/$name/consumer-pkgconfig
  cp -R "$root/examples/consumer-pkgconfig" "$pdir"
  export PKG_CONFIG_PATH="$libdir/pkgconfig"
  pkg-config --validate procpool || fail "$name: procpool.pc is not valid"
  echo "pkg-config --modversion:      $(pkg-config --modversion procpool)"
  echo "pkg-config --cflags:          $(pkg-config --cflags procpool)"
  echo "pkg-config --libs:            $(pkg-config --libs procpool)"
  echo "pkg-config --libs --static:   $(pkg-config --libs --static procpool)"
  [ "$(pkg-config --modversion procpool)" = "$version" ] ||
    fail "$name: procpool.pc says version $(pkg-config --modversion procpool)"
  # The header as pkg-config hands it out (-I, not -isystem), under every
  # warning clang has, in C and C++: a name C++ reserves (one with "__")
  # fails a consumer built with -Weverything -Werror.
  local cflags
  cflags=$(pkg-config --cflags procpool)
  # shellcheck disable=SC2086 # the flags are words
  echo '#include <procpool.h>' |
    clang++ -x c++ -std=c++17 -fsyntax-only -Weverything -Werror \
      -Wno-c++98-compat -Wno-padded -Wno-unknown-warning-option $cflags - ||
    fail "$name: procpool.h under clang++ -Weverything"
  # shellcheck disable=SC2086
  echo '#include <procpool.h>' |
    clang -x c -std=c11 -fsyntax-only -Weverything -Werror -Wno-padded \
      -Wno-unknown-warning-option $cflags - ||
    fail "$name: procpool.h under clang -Weverything"
  make -C "$pdir" SRC="$root/examples/consumer-cmake/main.c"
  LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$pdir/consumer" || fail "$name: consumer-pkgconfig"
  unset PKG_CONFIG_PATH
  timed "$name: consumers"
}

version=$(sed -n 's/^#define PP_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
  "$root/include/procpool.h" | paste -sd. -)
echo "procpool $version, from $root"

# ---- 1. static ---------------------------------------------------------------

build_and_install static OFF
static_prefix=$work/static/prefix
[ -n "$(find "$static_prefix" -name 'libprocpool.a')" ] ||
  fail "static: no libprocpool.a installed"
[ -z "$(find "$static_prefix" -name 'libprocpool.so*')" ] ||
  fail "static: a shared libprocpool was installed too"
check_consumers static

# ---- 2. shared ---------------------------------------------------------------

build_and_install shared ON
check_consumers shared

step "shared: exported symbols"
shared_prefix=$work/shared/prefix
lib=$(find "$shared_prefix" -name "libprocpool.so.$version" -type f -print -quit)
[ -n "$lib" ] || fail "shared: no libprocpool.so.$version installed"
soname=$(objdump -p "$lib" | sed -n 's/^ *SONAME *//p')
major=${version%%.*}
echo "$(basename "$lib"): SONAME $soname"
[ "$soname" = "libprocpool.so.$major" ] ||
  fail "shared: SONAME is '$soname', expected libprocpool.so.$major"
readelf -d "$work/shared/consumer-cmake/consumer" |
  grep -q "NEEDED.*\[libprocpool.so.$major\]" ||
  fail "shared: the consumer does not load libprocpool.so.$major"

public_functions "$shared_prefix/include/procpool.h" >"$work/public.txt"
# The markers a linker may define in any shared object are tolerated.
nm -D --defined-only "$lib" | awk '{ print $NF }' |
  grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u \
  >"$work/exported.txt"
unexpected=$(comm -13 "$work/public.txt" "$work/exported.txt")
missing=$(comm -23 "$work/public.txt" "$work/exported.txt")
if [ -n "$unexpected" ]; then
  echo "exported but not a public function of procpool.h:" >&2
  printf '  %s\n' $unexpected >&2
fi
if [ -n "$missing" ]; then
  echo "public functions of procpool.h not exported:" >&2
  printf '  %s\n' $missing >&2
fi
[ -z "$unexpected$missing" ] || fail "shared: exported symbols"
echo "nm -D --defined-only: $(wc -l <"$work/exported.txt") symbols, exactly" \
  "the $(wc -l <"$work/public.txt") public functions of procpool.h" \
  "(nothing else; $(grep -c '^pp_' "$work/exported.txt") start with pp_)"
timed "shared: symbols"

# ---- 3. API reference ---------------------------------------------------------

step "API reference: doxygen $(doxygen --version), warnings are errors"
docs_log=$build_root/doxygen.log
status=0
cmake --build "$build_root/static" --target docs >"$docs_log" 2>&1 || status=$?
warnings=$(grep -Ec '(warning|error):' "$docs_log" || true)
if [ "$status" -ne 0 ] || [ "$warnings" -ne 0 ]; then
  cat "$docs_log" >&2
  fail "doxygen: exit status $status, $warnings warning(s)"
fi
xml=$build_root/static/docs/api/xml/procpool_8h.xml
[ -f "$xml" ] || fail "doxygen: no $xml"
# Every public function must be in the reference.
awk '/<memberdef kind="function"/ { f = 1 }
     f && match($0, /<name>[^<]*<\/name>/) {
       print substr($0, RSTART + 6, RLENGTH - 13); f = 0
     }' "$xml" | sort -u >"$work/documented.txt"
undocumented=$(comm -23 "$work/public.txt" "$work/documented.txt")
[ -z "$undocumented" ] ||
  fail "doxygen: not in the reference: $(echo $undocumented)"
echo "doxygen: 0 warnings; $(wc -l <"$work/documented.txt") of" \
  "$(wc -l <"$work/public.txt") public functions documented;" \
  "HTML in $build_root/static/docs/api/html"
timed "API reference"

# ---- 4. in-tree ----------------------------------------------------------------

step "in-tree: examples/consumer-subdir, add_subdirectory(procpool), CUnit hidden"
sdir=$build_root/consumer-subdir
cmake -S "$root/examples/consumer-subdir" -B "$sdir" \
  -DPROCPOOL_SOURCE_DIR="$root" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_DISABLE_FIND_PACKAGE_CUnit=ON >"$sdir.configure.log" ||
  {
    cat "$sdir.configure.log"
    fail "in-tree: configure (does procpool still need CUnit as a subproject?)"
  }
cmake --build "$sdir" -j "$jobs"
"$sdir/consumer" || fail "in-tree: consumer-subdir"
registered=$(cd "$sdir" && ctest -N | sed -n 's/^Total Tests: //p')
[ "$registered" = 0 ] ||
  fail "in-tree: procpool registered $registered test(s) in the consumer's CTest"
extra=$(find "$sdir/procpool" -type f -perm -u+x | sort)
[ -z "$extra" ] || fail "in-tree: programs built beside the library: $extra"
echo "in-tree: the library alone was built; 0 tests registered; consumer ran"
timed "in-tree"

printf '\nci-packaging: all checks passed in %ds\n' $((SECONDS - started))
