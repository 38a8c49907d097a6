#!/usr/bin/env bash
# README command 2 (and what CI runs): set up, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
cd build
ctest -j2 --output-on-failure --timeout 600
