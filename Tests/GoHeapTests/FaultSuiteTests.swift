import Testing
import Foundation

// The fault suite: scenarios of goheap-testhelper run as subprocesses.
//  - cross-thread double frees in every order, frees and usableSize(of:) of
//    freed memory: each must stop the process with a clear message;
//  - a model-checked multi-threaded fuzz (a few seeds, one of them new every run);
//  - fork() while other threads use the heap, and the background scavenger in
//    a forked child;
//  - a heap destroyed while the threads that used it are exiting, or while
//    the background scavenger holds a reference to it.
// Long runs: scripts/fuzz-long.sh (10 M fuzz operations in a release build).

/// Runs the helper with arguments; (status, signaled, output).
func runHelper(_ args: [String]) throws -> (status: Int32, signaled: Bool, output: String) {
    try TestHelper.runExecutable("goheap-testhelper", args)
}

/// One misuse scenario: what the message must contain, and the markers the
/// scenario prints after the faulting call, which must not appear (the
/// process stops at that call).
struct FaultCase: CustomTestStringConvertible, Sendable {
    let scenario: String
    let expected: [String]
    let forbidden: [String]
    var testDescription: String { scenario }

    init(_ scenario: String, _ expected: [String], notPast forbidden: [String]) {
        self.scenario = scenario
        self.expected = expected
        self.forbidden = forbidden + ["no error was detected"]
    }
}

@Suite struct FaultSuiteFatalTests {
    static let cases: [FaultCase] = [
        // (a) remote free, then a local free by the owning thread (window word).
        FaultCase("double-free-remote-then-local", ["double free of 0x", "size class 15", "208 B objects"],
                  notPast: ["past second free"]),
        // (a) the same for an object in a word the owner's window has left.
        FaultCase("double-free-remote-then-local-old-word", ["double free of 0x", "object 0 ", "size class 3"],
                  notPast: ["past second free"]),
        // (b) local free into the window, then a remote free; may be caught
        // when the owner collects remote frees, never later.
        FaultCase("double-free-local-then-remote", ["double free of 0x", "size class 15", "208 B objects"],
                  notPast: ["past collection"]),
        FaultCase("double-free-local-then-remote-old-word", ["double free of 0x", "object 0 ", "size class 3"],
                  notPast: ["past second free"]),
        // (d) free on A, A flushes its cache, free again on B.
        FaultCase("double-free-after-flush", ["double free of 0x", "size class 5", "48 B objects"],
                  notPast: ["past second free"]),
        // (d) as (d), with the span emptied and returned to the page heap.
        FaultCase("double-free-after-flush-empty-span", ["free of 0x", "double free"],
                  notPast: ["past second free"]),
        // Free on A, A exits, free again on the main thread.
        FaultCase("double-free-after-owner-exit", ["double free of 0x", "size class 5", "48 B objects"],
                  notPast: ["past second free"]),
        // (a) remote, then local, in a span the owner had filed in the mcentral
        // and takes back from the partial list on that local free.
        FaultCase("double-free-remote-then-filler-takes-back", ["double free of 0x", "1024 B objects"],
                  notPast: ["past second free"]),
        // (e) remote, then local, then reuse: the live object must never be handed out twice.
        FaultCase("double-free-remote-then-local-reuse", ["double free of 0x", "size class 15", "208 B objects"],
                  notPast: ["past second free", "DUPLICATE"]),
        FaultCase("usable-size-freed-small", ["usableSize(of:) of 0x"],
                  notPast: ["usableSize of the freed object returned"]),
        FaultCase("usable-size-freed-small-remote", ["usableSize(of:) of 0x"],
                  notPast: ["usableSize of the freed object returned"]),
        FaultCase("usable-size-freed-large", ["usableSize(of:) of 0x"],
                  notPast: ["usableSize of the freed object returned"]),
        FaultCase("usable-size-freed-huge", ["usableSize(of:) of 0x"],
                  notPast: ["usableSize of the freed object returned"]),
        FaultCase("free-inside-freed-large", ["invalid free of 0x"],
                  notPast: ["past free inside the freed span"]),
        FaultCase("free-inside-freed-small-span", ["invalid free of 0x"],
                  notPast: ["past free inside the freed span"]),
    ]

    @Test(arguments: cases)
    func invalidFreeStopsTheProcess(_ c: FaultCase) throws {
        let r = try runHelper([c.scenario])
        #expect(r.signaled && r.status == SIGABRT,
                "\(c.scenario): should abort (SIGABRT), \(r.signaled ? "signal" : "exit status") \(r.status): \(r.output)")
        #expect(r.output.contains("fatal error: goheap: "), "\(c.scenario): \(r.output)")
        for e in c.expected { #expect(r.output.contains(e), "\(c.scenario): missing '\(e)' in: \(r.output)") }
        for f in c.forbidden { #expect(!r.output.contains(f), "\(c.scenario): went on past the fault ('\(f)'): \(r.output)") }
    }
}

/// One fuzz run; its description is the command that reproduces it.
struct FuzzRun: CustomTestStringConvertible, Sendable {
    let seed: UInt64
    let ops: Int
    let threads: Int
    var arguments: [String] { ["fuzz", "--seed", String(seed), "--ops", String(ops), "--threads", String(threads), "--watchdog", "300"] }
    var testDescription: String { "goheap-testhelper fuzz --seed \(seed) --ops \(ops) --threads \(threads)" }
}

@Suite struct FaultSuiteFuzzTests {
    /// New every run (GOHEAP_FUZZ_SEED overrides it); printed, and part of
    /// every failure message, so a failing run can be repeated.
    static let runSeed: UInt64 = {
        if let s = ProcessInfo.processInfo.environment["GOHEAP_FUZZ_SEED"], let v = UInt64(s) { return v }
        return UInt64(Date().timeIntervalSince1970 * 1000) % 1_000_000_007
    }()

    static let runs: [FuzzRun] = [
        FuzzRun(seed: 1, ops: 80_000, threads: 4),
        FuzzRun(seed: runSeed, ops: 80_000, threads: 4),
        FuzzRun(seed: runSeed &+ 1, ops: 30_000, threads: 1),
        FuzzRun(seed: runSeed &+ 2, ops: 50_000, threads: 8),
    ]

    /// The fuzz's overlap check (an ordered interval set) agrees with a
    /// brute-force scan, so an overlapping allocation cannot slip past it.
    @Test func fuzzModelAgreesWithBruteForce() throws {
        let r = try runHelper(["fuzz-model-selftest"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("fuzz-model-selftest: ok"), "\(r.output)")
    }

    @Test(arguments: runs)
    func modelCheckedFuzz(_ run: FuzzRun) throws {
        print("fault suite fuzz: \(run.testDescription)")
        let r = try runHelper(run.arguments)
        let line = "fuzz: \(run.ops) ops, seed \(run.seed), threads \(run.threads): ok"
        #expect(!r.signaled && r.status == 0 && r.output.contains(line),
                "reproduce with: \(run.testDescription)\n\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }
}

@Suite struct FaultSuiteProcessTests {
    /// 200 children forked one after another while three threads and the
    /// background scavenger use the heap: each child allocates, frees, starts
    /// a thread, and releases memory; none may crash or hang.
    @Test func forkWhileThreadsAllocate() throws {
        let r = try runHelper(["fork-stress", "--children", "200", "--timeout-ms", "10000",
                               "--max-failures", "2", "--watchdog", "300"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("fork: 200/200 children ok"),
                "\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }

    /// Control for the test above: nothing else runs at the fork, so the
    /// children cannot inherit a held lock. Checks the scenario itself.
    @Test func forkControlWithoutOtherThreads() throws {
        let r = try runHelper(["fork-stress", "--children", "50", "--workers", "0", "--no-scavenger",
                               "--max-failures", "1", "--watchdog", "300"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("fork: 50/50 children ok"),
                "\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }

    /// A forked child that allocates gets a background scavenger: memory it
    /// frees is released without any releaseFreeMemory call.
    @Test func backgroundScavengerRunsInForkedChild() throws {
        let r = try runHelper(["fork-scavenger"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("fork-scavenger: child ok"),
                "\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }

    /// A heap dropped while the threads that used it exit: Heap.deinit and
    /// the threads' exit hooks retire the same caches at once.
    @Test func heapDestroyedWhileThreadsExit() throws {
        let r = try runHelper(["heap-deinit-race", "--rounds", "500", "--watchdog", "300"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("heap-deinit-race: 500 rounds, 8 threads: ok"),
                "\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }

    /// Heaps dropped while the background scavenger holds references to them
    /// (it ticks every 50 µs here): the last reference may be the
    /// scavenger's, and Heap.deinit must not then run under the registry
    /// lock. A deadlock is reported by the helper's stall watchdog (no round
    /// completed for 10 s, however slow a sanitizer makes the rounds), with
    /// backtraces.
    @Test func heapDroppedWhileScavengerHoldsIt() throws {
        let r = try runHelper(["heap-drop-during-scavenge", "--rounds", "8000", "--stall", "10"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("heap-drop-during-scavenge: 8000 rounds: ok"),
                "\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }

    /// Control for heapDestroyedWhileThreadsExit: the threads are joined
    /// before the heap is dropped, so nothing races. Checks the scenario itself.
    @Test func heapDestroyedAfterThreadsExitControl() throws {
        let r = try runHelper(["heap-deinit-race", "--rounds", "200", "--join-first", "--watchdog", "300"])
        #expect(!r.signaled && r.status == 0 && r.output.contains("(joined first): ok"),
                "\(r.signaled ? "signal" : "exit status") \(r.status)\n\(r.output)")
    }
}
