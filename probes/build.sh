#!/bin/sh
# Builds herd_probe against a Release library: probes/build.sh LIBDIR OUT
# (LIBDIR holds libprocpool.a, e.g. build/bench).
set -e
here=$(dirname "$0")
cc -O2 -std=c11 -Wall -Wextra -I"$here/../include" $(pkg-config --cflags apr-1) \
  "$here/herd_probe.c" "$1/libprocpool.a" $(pkg-config --libs apr-1) -lpthread -lrt -o "$2"
