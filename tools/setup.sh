#!/usr/bin/env bash
# Installs what the build needs (Debian packages) and builds everything.
# Idempotent: installs only what is missing, rebuilds only what changed.
#   tools/setup.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config ccache
  librocksdb-dev libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc libssl-dev libsodium-dev
  libgtest-dev libabsl-dev libgoogle-glog-dev nlohmann-json3-dev openssl
  libcpp-httplib-dev libjemalloc-dev python3 python3-yaml
  ${LEDGER_EXTRA_PACKAGES:-})

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir="${1:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j2
