// Claims 4 and 5: which size class an object lands in, and where "large" starts (go1.19).
package main

import (
	"fmt"
	"runtime"
)

type three struct{ a, b, c int }

var sinkI []*int64
var sinkS []*three
var sinkB [][]byte

// bySizeDelta runs f and reports which MemStats.BySize classes gained mallocs,
// and how much heap (HeapInuse) and how many mallocs were added.
func bySizeDelta(name string, f func()) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	fmt.Printf("%s: mallocs +%d", name, b.Mallocs-a.Mallocs)
	for i := range b.BySize {
		if d := b.BySize[i].Mallocs - a.BySize[i].Mallocs; d > 0 {
			fmt.Printf(", size class %d B +%d", b.BySize[i].Size, d)
		}
	}
	fmt.Printf(", HeapInuse +%d\n", b.HeapInuse-a.HeapInuse)
}

func main() {
	bySizeDelta("claim4: 1000 new(int64)", func() {
		for i := 0; i < 1000; i++ {
			sinkI = append(sinkI, new(int64))
		}
	})
	sinkI = nil
	bySizeDelta("claim4: 1000 new(struct{a, b, c int})", func() {
		for i := 0; i < 1000; i++ {
			sinkS = append(sinkS, new(three))
		}
	})
	sinkS = nil
	for _, n := range []int{32768, 32769, 2097151, 2097152} {
		size := n
		bySizeDelta(fmt.Sprintf("claim5: make([]byte, %d)", n), func() { sinkB = append(sinkB, make([]byte, size)) })
	}
}
