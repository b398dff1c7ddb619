#!/usr/bin/env bash
# The benchmark comparison: installs the anchor allocators if missing, then
# runs `gomem bench` (release build) with any arguments given, e.g. --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift run -c release gomem bench "$@"
