// The lock every tier above the per-thread cache uses.
//
// A futex word from the shim (goheap_lock_t) next to the state it guards.
// Why not Synchronization.Mutex: fork. A fork handler must take every heap
// lock before fork() and release it in the parent and in the child, in
// different functions, which Mutex's closure-only API cannot express; and
// Mutex on Linux is a priority-inheritance futex that records its owner's
// thread id, so a child (whose thread has a new id) traps when it unlocks or
// waits on a lock inherited from the parent. This lock records nothing but
// "held", so the child may simply reset it.
//
// ThreadSanitizer: the fast paths are inline atomics in a C header that Swift
// compiles without instrumentation, so lock and unlock also announce
// themselves through goheap_tsan_acquire/release (empty unless built with TSan).
// Locks are taken only on slow paths (span refill, page allocation,
// statistics, fork).

import CShims

/// A raw lock word in memory that never moves (see `Locked`, `MCacheRef`).
@usableFromInline
struct LockRef: @unchecked Sendable, Equatable {
    @usableFromInline let raw: UnsafeMutablePointer<goheap_lock_t>

    init(_ raw: UnsafeMutablePointer<goheap_lock_t>) { self.raw = raw }

    static func allocate() -> LockRef {
        let p = UnsafeMutablePointer<goheap_lock_t>.allocate(capacity: 1)
        p.initialize(to: goheap_lock_t(word: 0))
        return LockRef(p)
    }

    @inline(__always) func lock() {
        goheap_lock(raw)
        goheap_tsan_acquire(raw)
    }

    @inline(__always) func tryLock() -> Bool {
        guard goheap_trylock(raw) else { return false }
        goheap_tsan_acquire(raw)
        return true
    }

    @inline(__always) func unlock() {
        goheap_tsan_release(raw)
        goheap_unlock(raw)
    }

    /// Fork child only: the lock was held by the forking thread in the parent.
    func reset() { goheap_lock_reset(raw) }
}

final class Locked<State: ~Copyable>: @unchecked Sendable {
    let lockRef = LockRef.allocate()
    @exclusivity(unchecked) private var state: State

    init(_ state: consuming sending State) { self.state = state }

    deinit { lockRef.raw.deallocate() }

    /// The state, for a caller that holds the lock through `lockRef` (fork
    /// handlers lock in one function and unlock in another).
    func withLockHeld<R>(_ body: (inout State) -> R) -> R { body(&state) }

    @inline(__always)
    func withLock<R: Sendable>(_ body: (inout State) -> R) -> R {
        lockRef.lock()
        defer { lockRef.unlock() }
        return body(&state)
    }
}
