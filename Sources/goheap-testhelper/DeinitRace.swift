// heap-deinit-race [--rounds 2000] [--threads 8] [--stall 20]: a heap is
// destroyed while the threads that used it are exiting.
//
// Each round creates a heap, starts threads that allocate from it (each gets
// a thread cache), free most of what they allocated, and exit. As soon as
// every thread has finished allocating, the main thread drops its reference,
// so Heap.deinit (which retires the heap's caches) runs while the threads'
// exit hooks are retiring the same caches. With --join-first (the control)
// the threads are joined before the heap is dropped, so nothing races. Exits 0 with
// "heap-deinit-race: N rounds, T threads: ok" if nothing crashed; a round
// that hangs for --stall seconds aborts the process with backtraces.
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
    let progress = Progress()
    startStallWatchdog(progress, seconds: intArgument("stall", default: 20), what: "heap-deinit-race")
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
        progress.step()
    }
    say("heap-deinit-race: \(rounds) rounds, \(threads) threads\(joinFirst ? " (joined first)" : ""): ok")
    exit(0)
}

/// heap-drop-during-scavenge [--rounds 10000] [--progress]: heaps are
/// created and dropped while the background scavenger ticks every 50 µs (a
/// heap with that scavengePeriod stays alive throughout). Each tick takes
/// strong references to the registered heaps to pick the ones it scavenges;
/// when a thread drops its reference during a tick, the tick's reference is
/// the last one, and Heap.deinit (which takes the registry lock) must not run
/// while the tick holds that lock. If it does, the process deadlocks, and the
/// stall watchdog (--stall, 10 s without a completed round) aborts it with
/// every thread's backtrace. Two threads create and
/// drop the heaps, half of them scavenging in the background and half not;
/// 40 bystander heaps stay alive so that each tick holds its references
/// longer. Exits 0 with "heap-drop-during-scavenge: N rounds: ok".
func runHeapDropDuringScavenge() -> Never {
    let rounds = intArgument("rounds", default: 10_000)
    startWatchdog(seconds: intArgument("watchdog", default: 600), what: "heap-drop-during-scavenge")
    let progress = Progress()
    startStallWatchdog(progress, seconds: intArgument("stall", default: 10), what: "heap-drop-during-scavenge")
    let ticker = Heap(configuration: HeapConfiguration(scavengePeriod: .microseconds(50), scavengeDelay: .zero))
    let p = ticker.allocate(byteCount: 64)
    // Bystanders: more heaps make each tick hold its references longer.
    let bystanders = (0..<intArgument("bystanders", default: 40)).map { _ in
        Heap(configuration: HeapConfiguration(backgroundScavenging: false))
    }
    // Two threads create and drop heaps, so that one of them usually runs
    // on the other CPU than the scavenger.
    let droppers = (0..<2).map { t in
        spawnThread {
            var rng = HelperRNG(seed: 99 + UInt64(t))
            for round in stride(from: t, to: rounds, by: 2) {
                var h: Heap? = Heap(configuration: HeapConfiguration(
                    backgroundScavenging: round & 2 == 0, scavengePeriod: .milliseconds(1)))
                // Vary the moment of the drop relative to the scavenger's tick.
                for _ in 0..<rng.below(200) { sched_yield() }
                h = nil
                _ = h
                progress.step()
                if flagArgument("progress") && round % 500 == 0 { say("round \(round)") }
            }
        }
    }
    for d in droppers { joinThread(d) }
    ticker.deallocate(p)
    _ = bystanders
    say("heap-drop-during-scavenge: \(rounds) rounds: ok")
    exit(0)
}
