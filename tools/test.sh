#!/usr/bin/env bash
# README command 2 (and what CI runs): set up, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Packages only the tests need: promtool checks /metrics, headless Chromium
# opens the decision report.
export LEDGER_EXTRA_PACKAGES="${LEDGER_EXTRA_PACKAGES:-} prometheus chromium"
tools/setup.sh build
cd build
# On failure the failed tests run again, alone, so their output is the last
# thing printed (a CI log is often read from its tail); the run still fails.
ctest -j2 --output-on-failure --timeout 600 || {
  echo "test: failures above; running the failed tests again, one at a time:" >&2
  ctest --rerun-failed --output-on-failure --timeout 600 || true
  exit 1
}
