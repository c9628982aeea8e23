# shellcheck shell=bash
# Sourced by scripts/windows-test.sh and scripts/ci-i386.sh, which build
# CUnit (and APR) from Debian's source packages for another target. Each
# defines say MESSAGE... and die MESSAGE... before sourcing this.

# apt-get source needs deb-src entries: the binary ones are mirrored when
# there are none.
ensure_deb_src() {
  if grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/; then
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "no deb-src entries in apt's sources (run as root)"
  say "adding deb-src entries"
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed 's/^Types: deb$/Types: deb-src/' "$f" \
      >"/etc/apt/sources.list.d/procpool-src-$(basename "$f")"
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
      >/etc/apt/sources.list.d/procpool-src.list
  fi
  apt-get update -qq
}

# build_cunit SRC WORK JOBS CONFIGURE_ARG...: configures CUnit's source
# tree SRC in WORK/build-cunit with the arguments given (static, no curses,
# its warnings off: they are not ours), then builds and installs it; the
# logs stay in WORK, their tails shown when a step fails.
build_cunit() {
  local src=$1 work=$2 jobs=$3
  shift 3
  mkdir -p "$work/build-cunit"
  (cd "$work/build-cunit" &&
    "$src/configure" "$@" --disable-curses --disable-shared --enable-static \
      CFLAGS="-O2 -w" >"$work/cunit-configure.log" 2>&1) ||
    { tail -n 40 "$work/cunit-configure.log"; die "configuring CUnit failed"; }
  make -C "$work/build-cunit" -j "$jobs" install \
    >"$work/cunit-build.log" 2>&1 ||
    { tail -n 40 "$work/cunit-build.log"; die "building CUnit failed"; }
}
