// Claims 1, 2, 3 and 6: what append and make really give, in go1.19.
package main

import (
	"fmt"
	"runtime"
)

func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

var sinkInts []int
var sinkBytes []byte

func main() {
	// Claim 1: appending to a 100-element slice, and to a cap-2048 slice.
	s100 := make([]int, 100)
	n := allocated(func() { sinkInts = append(s100, 1) })
	fmt.Printf("claim1: []int len 100 cap 100, append 1 -> cap %d, %d bytes allocated\n", cap(sinkInts), n)
	s2048 := make([]int, 2048)
	n = allocated(func() { sinkInts = append(s2048, 1) })
	fmt.Printf("claim1: []int len 2048 cap 2048, append 1 -> cap %d, %d bytes allocated\n", cap(sinkInts), n)
	b2048 := make([]byte, 2048)
	n = allocated(func() { sinkBytes = append(b2048, 1) })
	fmt.Printf("claim1: []byte len 2048 cap 2048, append 1 -> cap %d, %d bytes allocated\n", cap(sinkBytes), n)

	// Claim 2: the growth factor one append at a time, for []int.
	var g []int
	last := 0
	for len(g) < 20000 {
		g = append(g, 0)
		if cap(g) != last {
			if last >= 128 {
				fmt.Printf("claim2: cap %6d -> %6d  factor %.3f\n", last, cap(g), float64(cap(g))/float64(last))
			}
			last = cap(g)
		}
	}

	// Claim 3: make([]int, 100), then one append.
	m := make([]int, 100)
	fmt.Printf("claim3: make([]int, 100): len %d cap %d\n", len(m), cap(m))
	m = append(m, 1)
	fmt.Printf("claim3: after one append: len %d cap %d\n", len(m), cap(m))

	// Claim 6: []byte with cap 1024, append 1025 bytes, and append 1 byte.
	c := make([]byte, 1024)
	c1 := append(c, make([]byte, 1025)...)
	c2 := append(c, 1)
	fmt.Printf("claim6: []byte cap 1024 + 1025 bytes -> cap %d; + 1 byte -> cap %d\n", cap(c1), cap(c2))
}
