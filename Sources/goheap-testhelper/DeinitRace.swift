// heap-deinit-race [--rounds 2000] [--threads 8]: a heap is destroyed while
// the threads that used it are exiting.
//
// Each round creates a heap, starts threads that allocate from it (each gets
// a thread cache), free most of what they allocated, and exit. As soon as
// every thread has finished allocating, the main thread drops its reference,
// so Heap.deinit (which retires the heap's caches) runs while the threads'
// exit hooks are retiring the same caches. With --join-first (the control)
// the threads are joined before the heap is dropped, so nothing races. Exits 0 with
// "heap-deinit-race: N rounds, T threads: ok" if nothing crashed.
import GoHeap
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class RoundState: @unchecked Sendable {
    let allocated = Atomic<Int>(0)
}

func runHeapDeinitRace() -> Never {
    let rounds = intArgument("rounds", default: 2000)
    let threads = intArgument("threads", default: 8)
    let joinFirst = flagArgument("join-first")
    startWatchdog(seconds: intArgument("watchdog", default: 600), what: "heap-deinit-race")
    for round in 0..<rounds {
        var heap: Heap? = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        let state = RoundState()
        var ts: [pthread_t] = []
        for t in 0..<threads {
            let h = heap!
            ts.append(spawnThread {
                var ps: [UnsafeMutableRawPointer] = []
                for i in 0..<24 { ps.append(h.allocate(byteCount: 8 + 40 * ((i + t + round) % 30))) }
                if t == 0 { ps.append(h.allocate(byteCount: 40_000)) }
                for p in ps.dropLast(4) { h.deallocate(p) }
                state.allocated.wrappingAdd(1, ordering: .releasing)
                // Returning drops this thread's reference; the exit hook runs next.
            })
        }
        while state.allocated.load(ordering: .acquiring) < threads { sched_yield() }
        if joinFirst { for t in ts { joinThread(t) } }
        heap = nil
        if !joinFirst { for t in ts { joinThread(t) } }
    }
    say("heap-deinit-race: \(rounds) rounds, \(threads) threads\(joinFirst ? " (joined first)" : ""): ok")
    exit(0)
}
