#!/usr/bin/env bash
# Long model-checked fuzz of GoHeap: builds goheap-testhelper in release mode
# and runs its fuzz scenario (see Sources/goheap-testhelper/Fuzz.swift).
#
#   bash scripts/fuzz-long.sh [ops] [seed] [threads]
#
# ops defaults to 10000000, seed to one derived from the clock (printed, so a
# failure can be repeated with the same seed), threads to 4. Prints the
# helper's result line: "fuzz: N ops, seed S, threads T: ok", or the first
# discrepancy, and exits with the helper's status.
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${1:-10000000}
seed=${2:-$(( $(date +%s%N) / 1000 % 1000000007 ))}
threads=${3:-4}
swift build -c release --product goheap-testhelper >/dev/null
bin=$(swift build -c release --show-bin-path)/goheap-testhelper
echo "fuzz-long: $ops ops, seed $seed, threads $threads"
echo "  reproduce: bash scripts/fuzz-long.sh $ops $seed $threads"
start=$(date +%s)
status=0
# The watchdog only catches a hang: allow a generous 2 ms per operation.
"$bin" fuzz --ops "$ops" --seed "$seed" --threads "$threads" --watchdog $(( 600 + ops / 500 )) || status=$?
echo "fuzz-long: exit status $status after $(( $(date +%s) - start )) s"
exit $status
