#!/usr/bin/env bash
# README command 1: set up, build, and run ledgerd on its embedded RocksDB in
# ./var/ledger (a new ledger is initialised on first start).
#   tools/run.sh [ledgerd flags...]   e.g. --listen 127.0.0.1:0
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
exec build/services/ledgerd --data ./var/ledger "$@"
