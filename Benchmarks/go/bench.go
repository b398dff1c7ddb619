// The Go side of gomem bench workloads 7 and 8: the same loops, in Go, so the
// real runtime's slice and map appear beside GoCollections and Swift's own.
// Usage: bench append N | bench map N
// Prints one line of key=value pairs (times in ns, memory in bytes).
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// peakRSS reads VmHWM (bytes) from /proc/self/status.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(s.Text())[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// splitmix64, the generator gomem uses, so both sides see the same keys.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

var sink int

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bench append N | bench map N")
		os.Exit(64)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "N must be a positive integer")
		os.Exit(64)
	}
	base := peakRSS()
	switch os.Args[1] {
	case "append":
		t0 := time.Now()
		var a []int
		for i := 0; i < n; i++ {
			a = append(a, i)
		}
		d := time.Since(t0)
		sum := 0
		for _, v := range a {
			sum += v
		}
		sink = sum
		fmt.Printf("nanos=%d peak=%d cap=%d\n", d.Nanoseconds(), peakRSS()-base, cap(a))
	case "map":
		r := rng{2024}
		keys := make([]int, n)
		for i := range keys {
			keys[i] = int(r.next())
		}
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		for i := n - 1; i > 0; i-- {
			j := int(r.next() % uint64(i+1))
			order[i], order[j] = order[j], order[i]
		}
		m := map[int]int{}
		t0 := time.Now()
		for i, k := range keys {
			m[k] = i
		}
		t1 := time.Now()
		found := 0
		for _, i := range order {
			found += m[keys[i]]
		}
		t2 := time.Now()
		for _, k := range keys {
			delete(m, k)
		}
		t3 := time.Now()
		sink = found
		lat := make([]int64, n)
		l := map[int]int{}
		for i, k := range keys {
			a := time.Now()
			l[k] = i
			lat[i] = time.Since(a).Nanoseconds()
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p := lat[int(float64(n)*0.9999)]
		fmt.Printf("nanos=%d lookup=%.2f delete=%.2f p9999=%d worst=%.2f peak=%d\n",
			t1.Sub(t0).Nanoseconds(), float64(t2.Sub(t1).Nanoseconds())/float64(n),
			float64(t3.Sub(t2).Nanoseconds())/float64(n), p, float64(lat[n-1])/1000, peakRSS()-base)
	default:
		fmt.Fprintln(os.Stderr, "usage: bench append N | bench map N")
		os.Exit(64)
	}
}
