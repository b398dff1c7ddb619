// The registry: which heaps are alive, which thread caches each one has, and
// the events that cross threads: a thread exiting, the heap taking spans back
// from other threads' caches, and fork().
//
// What this tier owns: one global lock and, per heap slot (at most 64 heaps
// alive at once), the heap's epoch, its list of live caches, the locks of its
// mcentrals and mheap (for the fork handlers), and the counters of caches whose
// threads have exited.
//
// Invariants:
//   - A cache block is listed under its heap's slot exactly while it is live
//     for that heap; it leaves the list (under the registry lock) before its
//     block is freed, and a dying heap marks dead only the caches it lists. So
//     no one ever touches a freed cache block, whichever of thread exit and
//     heap destruction comes first.
//   - Frees never create a cache: a thread with none (for example one whose
//     exit hook already ran) counts its frees in the heap's own counters.
//
// Lock order: registry, then a cache's lock, then mcentral locks, then the
// mheap lock. An owner thread never asks for the registry lock while it holds
// its cache's lock, and nothing holds an mcentral or the mheap lock while
// asking for the registry.
//
// fork(): handlers installed with the first heap first finish the shim's
// one-time initializers (a child would wait forever on one inherited half
// done), then take every lock in that order before fork() and release them in
// the parent. In the child, where only the
// forking thread exists, they reset every lock, return the spans of every
// other thread's cache to the mcentrals (those threads are gone), and mark the
// background scavenger for restart on the child's first slow path. What is
// guaranteed: a child may use every heap right away, from any thread it
// creates, and its memory is returned as in the parent.

import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-heap bookkeeping kept by the registry.
struct HeapRegistration {
    #if hasFeature(Embedded)
    // Embedded Swift has no weak references. The embedded build is the malloc
    // library, whose one heap lives as long as the process, so the reference
    // can never dangle there.
    unowned(unsafe) var heap: Heap?
    #else
    weak var heap: Heap?
    #endif
    let epoch: Int
    /// The heap's mcentral locks then its mheap lock: the order fork takes them in.
    var locks: [LockRef]
    var caches: [MCacheRef] = []
    /// Counters of caches whose threads have exited, per span class.
    var retiredMallocs = [Int](repeating: 0, count: SizeClasses.spanClassCount)
    var retiredFrees = [Int](repeating: 0, count: SizeClasses.spanClassCount)

    /// Takes a cache out of the list, folding its counters into the totals.
    mutating func retire(_ c: MCacheRef) {
        for spc in 0..<SizeClasses.spanClassCount {
            let e = c.entry(spc)
            retiredMallocs[spc] += e.mallocs.pointee.load(ordering: .relaxed)
            retiredFrees[spc] += e.frees.pointee.load(ordering: .relaxed)
        }
        caches.removeAll { $0 == c }
    }
}

struct RegistryState {
    var slots = [HeapRegistration?](repeating: nil, count: Int(GOHEAP_MAX_HEAPS))
    var nextEpoch = 1
    var scavengerRunning = false
}

let registry = Locked(RegistryState())

/// Runs in a dying thread (pthread key destructor): return every span to its
/// heap and fold the counters into the heap's totals.
let threadExitHook: goheap_thread_exit_fn = { slots in
    guard let slots else { return }
    for slot in 0..<Int(GOHEAP_MAX_HEAPS) {
        guard let raw = slots[slot] else { continue }
        slots[slot] = nil
        let c = MCacheRef(raw)
        // The strong reference is dropped after the lock: if it were the last
        // one, the heap's deinit (which takes the registry lock) runs outside it.
        var keepAlive: Heap?
        registry.withLock { r in
            guard c.dead.pointee.load(ordering: .acquiring) == 0, var reg = r.slots[slot], reg.epoch == c.epoch
            else { return }
            // A heap whose deinit has begun reads as nil here: its spans are
            // about to be unmapped, so only the list entry matters.
            if let heap = reg.heap {
                keepAlive = heap
                c.lock.lock()
                c.releaseAll(to: heap.plan.table)
                c.lock.unlock()
            }
            reg.retire(c)
            r.slots[slot] = reg
        }
        keepAlive = nil
        c.destroy()
    }
}

extension Heap {
    /// Takes the spans back from other threads' caches of this heap: all of
    /// them (`idleMillis` nil), or those whose owner has not been on a slow
    /// path for `idleMillis` (checked against snapshots taken at each call).
    /// Returns the number of caches emptied here; busy caches and, where the
    /// asymmetric fence is unusable, all caches are asked to flush themselves.
    @discardableResult
    func reclaimCaches(idleMillis: Int?, now: Int) -> Int {
        let mine = goheap_tls_slots()[slot]
        let canFence = !goheap_tsan_enabled()
        return registry.withLock { r -> Int in
            guard let reg = r.slots[slot], reg.epoch == epoch else { return 0 }
            var victims: [MCacheRef] = []
            for c in reg.caches where c.raw != mine {
                if let idleMillis {
                    let n = c.refills.pointee.load(ordering: .relaxed)
                    if n != c.idleRefills || c.idleSince == 0 {
                        c.idleRefills = n
                        c.idleSince = now
                        continue
                    }
                    if now - c.idleSince < idleMillis { continue }
                }
                if c.spansHeld.pointee.load(ordering: .relaxed) == 0 { continue }
                if c.lock.tryLock() {
                    victims.append(c)
                } else {
                    c.flushRequested.pointee.store(1, ordering: .relaxed)
                }
            }
            if victims.isEmpty { return 0 }
            // Revoking alone is always safe: the owner's next operation fails
            // over to its slow path or to a remote free, and the slow path
            // honours the request. The fence lets us finish the job ourselves.
            for c in victims {
                c.revoke()
                c.flushRequested.pointee.store(1, ordering: .relaxed)
            }
            var emptied = 0
            if canFence && goheap_asymmetric_fence() {
                for c in victims {
                    c.waitUntilInactive()
                    c.releaseAll(to: plan.table)
                    emptied += 1
                }
            }
            for c in victims { c.lock.unlock() }
            return emptied
        }
    }
}

// MARK: - fork

enum ForkHandlers {
    static func install() {
        goheap_atfork_install(prepare, parent, child)
    }

    /// Every lock of every heap, in lock order, while the registry lock is held.
    private static func forEachLock(_ r: inout RegistryState, _ body: (LockRef) -> Void) {
        for case let reg? in r.slots {
            for c in reg.caches { body(c.lock) }
            for l in reg.locks { body(l) }
        }
    }

    static let prepare: @convention(c) () -> Void = {
        goheap_fork_settle_once_initializers()
        registry.lockRef.lock()
        registry.withLockHeld { r in forEachLock(&r) { $0.lock() } }
    }

    static let parent: @convention(c) () -> Void = {
        registry.withLockHeld { r in forEachLock(&r) { $0.unlock() } }
        registry.lockRef.unlock()
    }

    static let child: @convention(c) () -> Void = {
        registry.withLockHeld { r in
            forEachLock(&r) { $0.reset() }
            r.scavengerRunning = false
        }
        registry.lockRef.reset()
        // Only this thread survived: every other cache's spans would be lost.
        var wantScavenger = false
        registry.withLock { r in
            for i in r.slots.indices {
                guard var reg = r.slots[i], let heap = reg.heap else { continue }
                let mine = goheap_tls_slots()[i]
                for c in reg.caches where c.raw != mine {
                    c.releaseAll(to: heap.plan.table)
                    reg.retire(c)
                    c.destroy()
                }
                r.slots[i] = reg
                wantScavenger = wantScavenger || heap.configuration.backgroundScavenging
            }
        }
        if wantScavenger { Scavenger.restartWanted.store(true, ordering: .relaxed) }
    }
}
