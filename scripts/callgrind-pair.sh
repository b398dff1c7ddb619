#!/usr/bin/env bash
# Instructions per allocate+free pair (workload 1's loop, loop included), for
# GoHeap and each anchor allocator, counted by valgrind's callgrind: a number
# machine noise cannot move. Each allocator runs the loop at N and 2N pairs;
# the difference divided by N cancels start-up and library loading.
# Usage: scripts/callgrind-pair.sh [N]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
bash scripts/install-deps.sh
swift build -c release --product gomem >/dev/null
# valgrind 3.19 cannot read the DWARF 5 debug info of Swift 6 binaries: count
# instructions on a copy without it.
gomem=$(mktemp -d)/gomem
trap 'rm -rf "$(dirname "$gomem")"' EXIT
objcopy --strip-debug .build/release/gomem "$gomem"
count() {  # allocator pairs -> instructions
    local out
    # The tunable leaves room for jemalloc's static TLS (gomem would otherwise
    # re-execute itself to set it, which valgrind cannot follow).
    out=$(GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536 valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null "$gomem" pairloop --allocator "$1" --ops "$2" 2>&1) \
        || { echo "$out" >&2; return 1; }
    echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1
}
printf '| allocator | instructions per pair |\n|---|---:|\n'
for a in goheap glibc jemalloc mimalloc tcmalloc; do
    if ! c1=$(count "$a" "$n") || ! c2=$(count "$a" $((2 * n))); then
        printf '| %s | unavailable |\n' "$a"
        continue
    fi
    awk -v a="$a" -v c1="$c1" -v c2="$c2" -v n="$n" 'BEGIN { printf "| %s | %.1f |\n", a, (c2 - c1) / n }'
done
