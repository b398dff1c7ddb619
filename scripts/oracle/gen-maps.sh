#!/usr/bin/env bash
# Records make(map[K]V, hint) with the real go1.19 runtime, for more key and
# value types than ../shared/oracle has, in the format of mapbytes.txt plus the
# bucket size: "bytes KV HINT B TOTAL BUCKETSIZE".
# Usage: scripts/oracle/gen-maps.sh > Tests/GoCollectionsTests/Resources/mapbytes-extra.txt
set -euo pipefail
GO=${GO:-/usr/lib/go-1.19/bin/go}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/main.go" <<'GO'
package main

import (
	"fmt"
	"runtime"
	"unsafe"
)

// The first fields of the runtime's map header (go1.19): count, flags, B.
type header struct {
	count int
	flags uint8
	B     uint8
}

var sink any

// bucketSize reads the bucket size the compiler laid out for a map type from
// the runtime's maptype (go1.19: a 48-byte _type, key, elem, bucket, hasher,
// keysize, elemsize, then bucketsize as a uint16 at offset 82).
func bucketSize(m any) int {
	typ := (*[2]unsafe.Pointer)(unsafe.Pointer(&m))[0]
	return int(*(*uint16)(unsafe.Add(typ, 82)))
}

func measure[K comparable, V any](name string) {
	for _, hint := range []int{9, 14, 27, 53, 100, 105, 1000, 5000, 6657, 100000} {
		// The minimum of several measurements: an unrelated allocation (a
		// runtime background task) can land between the two ReadMemStats.
		best := ^uint64(0)
		var m map[K]V
		for try := 0; try < 5; try++ {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m = make(map[K]V, hint)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d < best {
				best = d
			}
			sink = m
		}
		h := *(**header)(unsafe.Pointer(&m))
		fmt.Printf("bytes %s %d %d %d %d\n", name, hint, h.B, best, bucketSize(m))
	}
}

type k20 [20]byte
type v200 [200]byte
type k130 [130]byte
type s3 struct{ a, b, c int64 }

func main() {
	measure[int64, int64]("i64:i64")   // 144 in ../shared/oracle
	measure[int32, int8]("i32:i8")
	measure[int8, int8]("i8:i8")
	measure[int64, bool]("i64:bool")
	measure[k20, int64]("b20:i64")
	measure[s3, s3]("s3:s3")
	measure[int64, v200]("i64:b200")   // value stored out of line
	measure[k130, int32]("b130:i32")   // key stored out of line
	measure[string, string]("str:str")
}
GO
(cd "$dir" && "$GO" mod init oracle >/dev/null 2>&1 && "$GO" run .)
