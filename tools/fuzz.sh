#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang-14, -DLEDGER_FUZZ=ON) in
# build-fuzz and runs each for a bounded time over a copy of its seed corpus
# (tests/fuzz/corpus/<target>/; the repository is never written). Exits
# non-zero if any target crashes, leaks, trips a sanitizer or an invariant.
#   tools/fuzz.sh [TARGET...]          (default: every target)
# Environment:
#   FUZZ_SECONDS  time per target (default 30)
#   JOBS          build parallelism (default 2)
#   FUZZ_KEEP     a directory to keep the grown corpora and crash inputs in
#                 (default: a temporary directory, removed afterwards unless
#                 something crashed)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

build_dir=build-fuzz
seconds="${FUZZ_SECONDS:-30}"
jobs="${JOBS:-2}"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_envelope fuzz_checkpoint fuzz_proof fuzz_rules fuzz_bundle fuzz_witness)

for tool in clang-14 clang++-14; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (apt-get install clang-14)" >&2; exit 1; }
done

CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEDGER_FUZZ=ON >/dev/null
cmake --build "$build_dir" -j"$jobs" --target "${targets[@]}"

work="${FUZZ_KEEP:-$(mktemp -d /tmp/ledger-fuzz.XXXXXX)}"
mkdir -p "$work"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

failed=()
for target in "${targets[@]}"; do
  corpus="$work/$target/corpus"
  artifacts="$work/$target/artifacts"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "tests/fuzz/corpus/$target" ]; then
    cp -r "tests/fuzz/corpus/$target/." "$corpus/"
  fi
  echo "fuzz: $target for ${seconds}s ($(ls "$corpus" | wc -l) seed inputs)"
  # -timeout: one input taking longer than 10 s is a hang, reported as a
  # failure. -rss_limit_mb: the fuzzers are small; 2 GB means a leak or a
  # blow-up. Output goes to a log that is shown on failure.
  if "$repo/$build_dir/tests/fuzz/$target" "$corpus" \
       -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
       -print_final_stats=1 -artifact_prefix="$artifacts/" \
       >"$work/$target/log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done" "$work/$target/log" | sed "s/^/fuzz: $target: /" || true
  else
    echo "fuzz: $target FAILED; last lines of $work/$target/log:" >&2
    tail -n 60 "$work/$target/log" >&2
    ls "$artifacts" | sed "s|^|fuzz: crash input: $artifacts/|" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs and logs kept in $work)" >&2
  exit 1
fi
[ -z "${FUZZ_KEEP:-}" ] && rm -rf "$work"
echo "fuzz: all targets ran ${seconds}s without a failure"
