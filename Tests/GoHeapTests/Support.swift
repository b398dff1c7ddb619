import Foundation
import GoHeap
import CShims

/// Runs each body on its own pthread and joins them all. pthread_join returns
/// after the thread has terminated, so thread-exit hooks have run.
func runOnThreads(_ bodies: [@Sendable () -> Void]) {
    final class Box { let f: @Sendable () -> Void; init(_ f: @escaping @Sendable () -> Void) { self.f = f } }
    var threads: [pthread_t] = []
    for b in bodies {
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(b)).toOpaque()
        let rc = pthread_create(&t, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.f()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

/// Resident set size of this process in bytes.
func residentBytes() -> Int {
    var size = 0, rss = 0
    precondition(goheap_os_statm(&size, &rss))
    return rss
}

/// A fixture copied from ../shared/oracle into the test bundle.
func fixture(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources") else {
        throw FixtureError.missing(name)
    }
    return try String(contentsOf: url, encoding: .utf8)
}

enum FixtureError: Error { case missing(String) }

/// Deterministic PRNG (SplitMix64) so failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Fills a block with a pattern derived from its address and a tag.
func fill(_ p: UnsafeMutableRawPointer, _ n: Int, tag: UInt8) {
    let b = p.assumingMemoryBound(to: UInt8.self)
    let seed = UInt8(truncatingIfNeeded: UInt(bitPattern: p) >> 4) &+ tag
    for i in 0..<n { b[i] = seed &+ UInt8(truncatingIfNeeded: i) }
}

/// True if the block still holds the pattern written by fill.
func check(_ p: UnsafeMutableRawPointer, _ n: Int, tag: UInt8) -> Bool {
    let b = p.assumingMemoryBound(to: UInt8.self)
    let seed = UInt8(truncatingIfNeeded: UInt(bitPattern: p) >> 4) &+ tag
    for i in 0..<n where b[i] != seed &+ UInt8(truncatingIfNeeded: i) { return false }
    return true
}

/// A heap for one test, without the background scavenger so counts are stable.
func makeTestHeap(_ config: HeapConfiguration = HeapConfiguration(backgroundScavenging: false)) -> Heap {
    Heap(configuration: config)
}
