#!/usr/bin/env bash
# Fuzzes the parent's reader of worker frames (fuzz/fuzz_frames.c) with
# libFuzzer, ASan and UBSan for a bounded time, starting from the seed corpus
# in fuzz/corpus. Any crash, leak or sanitizer report fails the run.
#
# Usage: scripts/ci-fuzz.sh [SECONDS]   (default 60)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
out=${BUILD_DIR:-$root/build/fuzz}

# libFuzzer ships with clang's runtime libraries.
"$root/scripts/deps.sh" clang libclang-rt-dev

mkdir -p "$out/corpus"
clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -Wall -Wextra -Werror \
  -I"$root/include" -I"$root/src/common" \
  "$root/fuzz/fuzz_frames.c" "$root/src/common/wire.c" \
  "$root/src/common/buf.c" -o "$out/fuzz_frames"

# The seed corpus is copied so that what the fuzzer finds stays out of the
# source tree.
cp "$root"/fuzz/corpus/* "$out/corpus/"
"$out/fuzz_frames" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$out/" \
  "$out/corpus" </dev/null
