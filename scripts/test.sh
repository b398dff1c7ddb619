#!/usr/bin/env bash
# Runs GoHeap's tests. Installs the system packages the tests use when they are
# missing (libnuma for NUMA, numactl for the topology cross-check, and the
# allocators gomem bench compares against), then runs `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libnuma-dev numactl libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

swift test "$@"
