#!/usr/bin/env bash
# Installs the system packages GoHeap's tests and benchmarks use, when they are
# missing: libnuma (NUMA), numactl (the topology cross-check), the allocators
# gomem bench compares against (jemalloc, mimalloc, tcmalloc), and valgrind
# (instruction counts). With --programs, also what `gomem bench --programs`
# runs: python3, g++ (with gcc and cc) and coreutils' sort (clang comes with
# the Swift toolchain). With --only P..., just the named packages (for the
# other scripts' own needs). Needs root, or sudo.
set -euo pipefail
packages=(libnuma-dev numactl libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev valgrind)
if [ "${1:-}" = "--programs" ]; then
    packages+=(python3 g++ coreutils)
elif [ "${1:-}" = "--only" ]; then
    shift
    packages=("$@")
fi
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
