#!/usr/bin/env bash
# ctest deploy_manifests: checks every file under deploy/ and starts ledgerd and
# ledger-witness with exactly the arguments the manifests and units give them.
#   deploy_manifests.sh SOURCE_DIR LEDGERD LEDGER_WITNESS LEDGERCTL
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 SOURCE_DIR LEDGERD LEDGER_WITNESS LEDGERCTL" >&2
  exit 2
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "deploy_manifests: python3 cannot import yaml (install the Debian package python3-yaml; tools/setup.sh does)" >&2
  exit 1
fi
exec python3 "$(dirname "$0")/check_manifests.py" --deploy "$1/deploy" \
  --ledgerd "$2" --witness "$3" --ledgerctl "$4"
