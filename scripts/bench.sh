#!/usr/bin/env bash
# The benchmark comparison: installs the anchor allocators if missing, then
# runs `gomem bench` (release build) with any arguments given, e.g. --quick.
# With no arguments, or only --quick, it then runs `gomem bench --programs`
# too (real programs under each allocator through LD_PRELOAD; about 6
# minutes, 30 s with --quick), installing the programs if missing.
# `bash scripts/bench.sh --programs ...` runs only the program tables.
set -euo pipefail
cd "$(dirname "$0")/.."
programs=1
for a in "$@"; do
    case "$a" in
        --quick) ;;
        --programs) programs=2 ;;
        *) [ "$programs" = 2 ] || programs=0 ;;
    esac
done
if [ "$programs" = 0 ]; then bash scripts/install-deps.sh; else bash scripts/install-deps.sh --programs; fi
swift run -c release gomem bench "$@"
if [ "$programs" = 1 ]; then
    swift run -c release gomem bench --programs "$@"
fi
