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

/// How a heap's allocations map to partitions.
struct PartitionPlan {
    let partitions: [Partition]
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
            return PartitionPlan(partitions: [p], local: false, policyPartition: 0,
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
        return PartitionPlan(partitions: parts, local: policy == .local, policyPartition: policyPartition,
                             nodePartition: nodePartition, cpuPartition: cpuPartition, fallbackOrder: order)
    }

    private static func distance(_ a: Int?, _ b: Int?) -> Int {
        guard let a, let b else { return Int.max / 2 }
        return NUMA.distance(from: a, to: b) ?? Int.max / 2
    }

    /// The partition the calling thread allocates from now (slow paths only).
    @inline(__always)
    func current() -> Int {
        if partitions.count == 1 { return 0 }
        let o = Int(goheap_tls_node_override())
        if o >= 0, o < nodePartition.count, nodePartition[o] >= 0 { return nodePartition[o] }
        if !local { return policyPartition }
        let cpu = Int(goheap_current_cpu())
        return cpu >= 0 && cpu < cpuPartition.count ? cpuPartition[cpu] : 0
    }
}
