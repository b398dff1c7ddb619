#!/usr/bin/env bash
# Records Go's append growth for more element sizes than ../shared/oracle has,
# in the same line format as slices.txt, with the real go1.19 runtime.
# Usage: scripts/oracle/gen-slices.sh > Tests/GoCollectionsTests/Resources/slices-extra.txt
# Needs golang-1.19-go (apt-get install golang-1.19-go).
set -euo pipefail
GO=${GO:-/usr/lib/go-1.19/bin/go}
SIZES=${SIZES:-"3 5 6 7 9 10 11 13 15 17 20 40 56 72 80 100 120 144 200 255 257 300 500 511 513 777 1023 1025 2000 3000 5000 8191 8193 10000 20000 32768 32769 40000 65536 100000"}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
{
cat <<'GO'
package main

import (
	"bufio"
	"fmt"
	"os"
)

var out = bufio.NewWriter(os.Stdout)

// trace prints the capacity trajectories of []T for one element type.
func trace[T any](size int) {
	// one: append one element at a time to a nil slice until it holds 64 MiB.
	var s []T
	var x T
	limit := 64 << 20
	if size == 0 {
		limit = 100
	} else {
		limit = limit / size
	}
	for len(s) < limit {
		before := cap(s)
		l := len(s)
		s = append(s, x)
		if cap(s) != before {
			fmt.Fprintf(out, "%d one %d %d %d\n", size, l, before, cap(s))
		}
	}
	s = nil
	for _, k := range []int{1, 3, 5, 7, 9, 13, 17, 100, 255, 256, 257, 511, 1000, 1023, 1024, 1025, 4097, 10000} {
		var n []T
		n = append(n, make([]T, k)...)
		fmt.Fprintf(out, "%d bulk0 %d 0 %d\n", size, k, cap(n))
	}
	for _, n := range []int{1, 5, 100, 255, 256, 257, 1000, 1024, 1025, 3000, 100000} {
		m := make([]T, n)
		m = append(m, x)
		fmt.Fprintf(out, "%d make1 %d %d %d\n", size, n, n, cap(m))
	}
	for _, n := range []int{10, 300, 5000} {
		for _, k := range []int{1, 2, 50, 400, 9000} {
			m := make([]T, n)
			m = append(m, make([]T, k)...)
			fmt.Fprintf(out, "%d makek %d+%d %d %d\n", size, n, k, n, cap(m))
		}
	}
}

func main() {
	defer out.Flush()
GO
for n in $SIZES; do echo "	trace[[$n]byte]($n)"; done
echo "}"
} > "$dir/main.go"
(cd "$dir" && "$GO" mod init oracle >/dev/null 2>&1 && GOFLAGS=-mod=mod "$GO" run . )
