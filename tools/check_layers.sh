#!/usr/bin/env bash
# Dependencies point one way (DESIGN §6): tools -> services -> client ->
# ledger -> proto, and inside ledger/: crypto -> merkle -> witness, event -> rules ->
# store, audit (common, a thread pool, below them all). Every #include "..." of ours in each area must name an area it
# may depend on; prints each one that does not and exits 1.
#   tools/check_layers.sh [REPO_ROOT]     (run by ctest as `layering`)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# area: the include prefixes its files may use ("ledger/v1/" is the
# generated protobuf code, which every area may use).
declare -A allowed=(
  [ledger/common]="ledger/common/"
  [ledger/crypto]="ledger/common/ ledger/crypto/"
  [ledger/merkle]="ledger/crypto/ ledger/merkle/"
  [ledger/witness]="ledger/common/ ledger/crypto/ ledger/merkle/ ledger/witness/"
  [ledger/event]="ledger/v1/ ledger/crypto/ ledger/event/"
  [ledger/rules]="ledger/v1/ ledger/crypto/ ledger/event/ ledger/rules/"
  [ledger/store]="ledger/v1/ ledger/common/ ledger/crypto/ ledger/merkle/ ledger/event/ ledger/rules/ ledger/store/"
  [ledger/audit]="ledger/v1/ ledger/common/ ledger/crypto/ ledger/merkle/ ledger/witness/ ledger/event/ ledger/rules/ ledger/audit/"
  [client]="ledger/v1/ ledger/event/ client/"
  [services]="ledger/ client/ services/"
  [tools]="ledger/v1/ ledger/common/ ledger/crypto/ ledger/merkle/ ledger/witness/ ledger/event/ ledger/rules/ ledger/audit/ client/ services/command_line.h services/backup.h tools/"
)
# Our own include roots; anything else (absl/, grpcpp/, ...) is a library.
ours='^(ledger|client|services|tools|tests)/'

status=0
for area in "${!allowed[@]}"; do
  while IFS= read -r -d '' file; do
    while IFS= read -r line; do
      header=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/' <<<"$line")
      [[ "$header" =~ $ours ]] || continue
      ok=0
      for prefix in ${allowed[$area]}; do
        [[ "$header" == "$prefix"* ]] && ok=1 && break
      done
      if [ "$ok" -eq 0 ]; then
        echo "layering: $file includes \"$header\", but $area may include only: ${allowed[$area]}" >&2
        status=1
      fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$file" || true)
  done < <(find "$area" -maxdepth 2 \( -name '*.h' -o -name '*.cc' \) -print0)
done
[ "$status" -eq 0 ] && echo "layering: every include points the allowed way"
exit "$status"
