// The lock every tier above the per-thread cache uses.
//
// A Synchronization.Mutex around the state it guards, plus two annotations
// for ThreadSanitizer: the toolchain's Mutex is implemented in the
// (uninstrumented) standard library on a futex, so TSan would otherwise see
// no ordering between critical sections and report every guarded access as a
// race. The annotations are empty functions unless built with TSan. Locks are
// taken only on slow paths (span refill, page allocation, statistics).

import CShims
import Synchronization

final class Locked<State: ~Copyable>: @unchecked Sendable {
    private let mutex: Mutex<State>

    init(_ state: consuming sending State) { mutex = Mutex(state) }

    @inline(__always)
    func withLock<R: Sendable>(_ body: (inout State) throws -> R) rethrows -> R {
        let tag = Unmanaged.passUnretained(self).toOpaque()
        return try mutex.withLock { (s: inout State) throws -> R in
            goheap_tsan_acquire(tag)
            defer { goheap_tsan_release(tag) }
            return try body(&s)
        }
    }
}
