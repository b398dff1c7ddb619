#!/usr/bin/env bash
# Runs GoHeap's tests. Installs the system packages the tests use when they are
# missing (scripts/install-deps.sh: libnuma, numactl, the anchor allocators,
# valgrind), then runs `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift test "$@"
