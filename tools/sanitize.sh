#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang-14, -DLEDGER_SANITIZE=ON) in build-asan and runs every test (unit and
# integration) under them. Exits non-zero on any failure or sanitizer report.
#   tools/sanitize.sh [BUILD_DIR]      (default: build-asan)
# Environment: JOBS (default 2) build/test parallelism;
#   SANITIZE_EXCLUDE  ctest -E regex of tests to skip (default below).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${1:-build-asan}"
jobs="${JOBS:-2}"

for tool in clang-14 clang++-14; do
  command -v "$tool" >/dev/null || { echo "sanitize: $tool not found (apt-get install clang-14)" >&2; exit 1; }
done

# RelWithDebInfo keeps the tests fast enough and the reports symbolized.
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEDGER_SANITIZE=ON >/dev/null
cmake --build "$build_dir" -j"$jobs"

# detect_leaks=1: a leak in our code fails the run.
# abort_on_error=1 / halt_on_error=1: the first report kills the process, so a
#   test cannot pass with a report buried in its output.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

exclude="${SANITIZE_EXCLUDE-}"
exclude_args=()
[ -n "$exclude" ] && exclude_args=(-E "$exclude")

cd "$build_dir"
ctest -j"$jobs" --output-on-failure --timeout 600 "${exclude_args[@]}" || {
  echo "sanitize: failures above; running the failed tests again, one at a time:" >&2
  ctest --rerun-failed --output-on-failure --timeout 600 || true
  exit 1
}
