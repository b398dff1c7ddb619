// Claims 7 to 10: map growth, overflow buckets, concurrent writes, GC pauses (go1.19).
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"
	"unsafe"
)

// The first fields of the runtime's map header (go1.19).
type hmap struct {
	count     int
	flags     uint8
	B         uint8
	noverflow uint16
}

func header(m map[int64]int64) *hmap { return *(**hmap)(unsafe.Pointer(&m)) }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "race" {
		// Claim 9: two goroutines writing one map.
		m := map[int]int{}
		go func() {
			for i := 0; ; i++ {
				m[i] = i
			}
		}()
		for i := 0; ; i++ {
			m[-i] = i
		}
	}

	// Claim 7: with 8 buckets (B = 3), which insert starts the growth?
	m := map[int64]int64{}
	for i := int64(1); i <= 60; i++ {
		before := header(m).B
		m[i] = i
		if h := header(m); h.B != before {
			fmt.Printf("claim7: insert #%d: B %d -> %d (count before %d, 6.5 * 2^%d = %.1f)\n", i, before, h.B, i-1, before, 6.5*float64(int(1)<<before))
		}
	}

	// Claim 8: B and overflow buckets after 65 inserts, ten fresh maps.
	for run := 0; run < 10; run++ {
		m := map[int64]int64{}
		for i := int64(0); i < 65; i++ {
			m[i*7919] = i
		}
		h := header(m)
		fmt.Printf("claim8: run %d: 65 inserts -> B=%d noverflow=%d\n", run, h.B, h.noverflow)
	}

	// Claim 10: GC pauses while a 10 M-entry map grows.
	debug.SetGCPercent(100)
	var stats debug.GCStats
	big := map[int64]int64{}
	start := time.Now()
	worst := time.Duration(0)
	for i := int64(0); i < 10_000_000; i++ {
		t := time.Now()
		big[i] = i
		if d := time.Since(t); d > worst {
			worst = d
		}
	}
	debug.ReadGCStats(&stats)
	maxPause := time.Duration(0)
	for _, p := range stats.Pause {
		if p > maxPause {
			maxPause = p
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("claim10: 10 M inserts in %v; %d GCs; longest stop-the-world pause %v; worst single insert %v\n",
		time.Since(start).Round(time.Millisecond), stats.NumGC, maxPause, worst)
}
