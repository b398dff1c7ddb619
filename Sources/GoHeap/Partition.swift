// Partitions: the tier between the thread caches and the pages, one per NUMA
// node where the machine has more than one.
//
// What this tier owns: a heap's partitions (each its own mheap, arenas and 136
// mcentrals) and the choice of partition for an allocation. With the default
// node-local policy on a machine with several nodes there is one partition per
// node, whose arenas prefer that node (mbind MPOL_PREFERRED before first
// touch, so a full node spills over in the kernel's distance order instead of
// failing). A thread's cache refills from the partition of the node the
// thread runs on; large and huge objects come from it too. Heaps with another
// policy (bind, preferred, interleave, first touch) allocate from one extra
// partition with that policy, and keep the per-node partitions only for
// threads pinned with NUMA.setAllocationNode. On a single node there is one
// partition and nothing here runs.
//
// Invariants: a span belongs to the partition whose page heap made it (it
// records the index; span records never move between page heaps), and every
// free returns it there: spans to that partition's mcentrals, pages to its
// page heap. So memory a thread on node 0 frees is never handed to a thread on
// node 1, unless node 1's partition cannot get memory at all; then the
// allocation falls back to the other partitions in distance order, and each
// such fallback is counted.
//
// Cost: the node is looked up only on slow paths (a cache refill, a large
// allocation), from sched_getcpu (rseq or vDSO: no system call) and a CPU-to-
// partition table built when the heap is created. The fast paths never ask.
// A thread that migrates keeps allocating from the words it has checked out,
// and its next refill of each class moves to the new node.
//
// Locking: none of its own; each partition's mcentral and mheap locks, which
// are never held one inside another.
//
// Reference counting: the warm paths (a cache refill, taking a span back, a
// remote free into a full span, a large free) reach an mcentral or mheap
// through PartitionTable, unmanaged references that are never retained.
// Through the partitions array each of them retained and released the array,
// the Partition and the MCentral: atomic read-modify-writes on objects every
// thread shares, so two threads refilling at once bounced those cache lines
// between their cores (larson spent 6% of its time in swift_retain). The plan
// owns the objects for the heap's lifetime, so the references stay valid.

import CShims
import Synchronization

/// One page heap and its mcentrals.
final class Partition: @unchecked Sendable {
    let index: Int
    /// The node its arenas prefer; nil for the heap's own policy partition.
    let node: Int?
    let policy: NUMAPolicy
    let mheap: MHeap
    let centrals: [MCentral]
    /// Allocations served here for a partition that could not get memory.
    let fallbacks = Atomic<Int>(0)

    init(index: Int, node: Int?, policy: NUMAPolicy, pageMap: PageMapOwner, softLimit: Int, heapSlot: Int) {
        self.index = index
        self.node = node
        self.policy = policy
        let m = MHeap(pageMap: pageMap, numa: policy, softLimit: softLimit, partition: index, heapSlot: heapSlot)
        mheap = m
        centrals = (0..<SizeClasses.spanClassCount).map { MCentral(spanClass: $0, heap: m) }
    }

    /// The mcentral and mheap locks, for the fork handlers.
    var locks: [LockRef] { centrals.map { $0.lists.lockRef } + [mheap.locked.lockRef] }
}

/// Every partition's mheap and mcentrals as unmanaged references, for the
/// warm paths (see the note at the top). Valid while the plan that made it
/// lives; the heap frees it in its deinit.
struct PartitionTable: @unchecked Sendable {
    let count: Int
    private let heaps: UnsafeMutablePointer<Unmanaged<MHeap>>
    private let centrals: UnsafeMutablePointer<Unmanaged<MCentral>>

    init(_ partitions: [Partition]) {
        count = partitions.count
        heaps = .allocate(capacity: count)
        centrals = .allocate(capacity: count * SizeClasses.spanClassCount)
        for p in partitions {
            (heaps + p.index).initialize(to: .passUnretained(p.mheap))
            for c in p.centrals {
                (centrals + p.index * SizeClasses.spanClassCount + c.spanClass).initialize(to: .passUnretained(c))
            }
        }
    }

    func deallocate() {
        heaps.deallocate()
        centrals.deallocate()
    }

    /// Runs `body` on the mcentral of span class `spc` in partition `p`.
    @inline(__always)
    func central<R>(_ p: Int, _ spc: Int, _ body: (MCentral) -> R) -> R {
        centrals[p &* SizeClasses.spanClassCount &+ spc]._withUnsafeGuaranteedRef(body)
    }

    /// Runs `body` on the mheap of partition `p`.
    @inline(__always)
    func mheap<R>(_ p: Int, _ body: (MHeap) -> R) -> R {
        heaps[p]._withUnsafeGuaranteedRef(body)
    }
}

/// How a heap's allocations map to partitions.
struct PartitionPlan {
    let partitions: [Partition]
    /// The same partitions' tiers, for paths that must not retain them.
    let table: PartitionTable
    /// Pick the partition by the node of the CPU the thread runs on.
    let local: Bool
    /// The partition used when `local` is false and the thread is not pinned.
    let policyPartition: Int
    /// node id -> partition index, -1 for nodes without one.
    let nodePartition: [Int]
    /// cpu -> partition index.
    let cpuPartition: [Int]
    /// For each partition, the others nearest first (fallback order).
    let fallbackOrder: [[Int]]

    /// Validates the policy against the machine (fatal, naming the node and
    /// the machine's nodes) and builds the partitions.
    static func make(policy: NUMAPolicy, pageMap: PageMapOwner, softLimit: Int, heapSlot: Int) -> PartitionPlan {
        // On a one-node machine a node-local or first-touch heap needs nothing
        // from libnuma: skip loading it (most of a process's start-up cost
        // when GoHeap is its malloc).
        let oneNode = (policy == .local || policy == .firstTouch) && goheap_numa_sysfs_node_count() <= 1
        let nodes = oneNode ? [0] : NUMA.nodes
        if let n = policy.node, !nodes.contains(n) {
            heapFatal("Heap(configuration:): .\(policy == .bind(node: n) ? "bind" : "preferred")(node: \(n)) names a node this machine does not have (nodes \(NUMA.describe(nodes)))")
        }
        let maxNode = nodes.max() ?? 0
        if nodes.count <= 1 {
            let p = Partition(index: 0, node: nil, policy: policy == .local ? .firstTouch : policy,
                              pageMap: pageMap, softLimit: softLimit, heapSlot: heapSlot)
            return PartitionPlan(partitions: [p], table: PartitionTable([p]), local: false, policyPartition: 0,
                                 nodePartition: [Int](repeating: 0, count: maxNode + 1),
                                 cpuPartition: [], fallbackOrder: [[]])
        }
        // Each partition gets an equal share of a soft limit.
        let count = nodes.count + (policy == .local ? 0 : 1)
        let share = softLimit > 0 ? max(1, softLimit / count) : 0
        var parts: [Partition] = []
        var nodePartition = [Int](repeating: -1, count: maxNode + 1)
        for n in nodes {
            nodePartition[n] = parts.count
            parts.append(Partition(index: parts.count, node: n, policy: .preferred(node: n),
                                   pageMap: pageMap, softLimit: share, heapSlot: heapSlot))
        }
        var policyPartition = 0
        if policy != .local {
            policyPartition = parts.count
            parts.append(Partition(index: parts.count, node: nil, policy: policy, pageMap: pageMap, softLimit: share,
                                   heapSlot: heapSlot))
        }
        let cpuPartition = (0..<max(NUMA.cpuCount, 1)).map { cpu -> Int in
            guard let n = NUMA.node(ofCPU: cpu), n < nodePartition.count, nodePartition[n] >= 0 else { return 0 }
            return nodePartition[n]
        }
        let order = parts.map { p -> [Int] in
            parts.filter { $0.index != p.index }.sorted { a, b in
                distance(p.node, a.node) < distance(p.node, b.node)
            }.map { $0.index }
        }
        return PartitionPlan(partitions: parts, table: PartitionTable(parts), local: policy == .local,
                             policyPartition: policyPartition,
                             nodePartition: nodePartition, cpuPartition: cpuPartition, fallbackOrder: order)
    }

    private static func distance(_ a: Int?, _ b: Int?) -> Int {
        guard let a, let b else { return Int.max / 2 }
        return NUMA.distance(from: a, to: b) ?? Int.max / 2
    }

    /// The partition the calling thread allocates from now (slow paths only).
    @inline(__always)
    func current() -> Int {
        if table.count == 1 { return 0 }
        let o = Int(goheap_tls_node_override())
        if o >= 0, o < nodePartition.count, nodePartition[o] >= 0 { return nodePartition[o] }
        if !local { return policyPartition }
        let cpu = Int(goheap_current_cpu())
        return cpu >= 0 && cpu < cpuPartition.count ? cpuPartition[cpu] : 0
    }
}
