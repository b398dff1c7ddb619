// NUMA: topology queries and the placement policies a heap applies.
//
// libnuma is loaded at run time by the shim, so GoHeap builds and runs on
// machines without it; there the topology is a single node and `unavailableReason`
// says why. A policy is applied to each arena when it is reserved, before any
// page of it is touched, so first touch never places a page on the wrong node.
// How a heap uses the policies (one partition per node) is in Partition.swift.

import CShims

/// Where a heap's pages should live on a multi-socket machine.
public enum NUMAPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Node-local (the default): on a machine with more than one node the heap
    /// keeps one partition (arenas, page heap, mcentrals) per node, each
    /// thread allocates from the partition of the node it runs on, and freed
    /// memory returns to its own node's partition. On one node it is the same
    /// as `firstTouch` and costs nothing.
    case local
    /// One partition, no policy: the kernel places each page on the node of
    /// the thread that first touches it.
    case firstTouch
    /// Every arena bound to one node (mbind MPOL_BIND).
    case bind(node: Int)
    /// Every arena prefers one node and falls back to others when it is full
    /// (mbind MPOL_PREFERRED).
    case preferred(node: Int)
    /// Arenas interleaved page by page over all nodes (MPOL_INTERLEAVE).
    case interleave

    public var description: String {
        switch self {
        case .local: return "node-local (a partition per node)"
        case .firstTouch: return "first-touch (kernel default)"
        case .bind(let n): return "bind to node \(n)"
        case .preferred(let n): return "prefer node \(n)"
        case .interleave: return "interleave over all nodes"
        }
    }

    /// The node the policy names, if any.
    var node: Int? {
        switch self {
        case .bind(let n), .preferred(let n): return n
        default: return nil
        }
    }

    func apply(to p: UnsafeMutableRawPointer, bytes: Int) {
        switch self {
        case .local, .firstTouch:
            return
        case .bind(let node):
            let rc = goheap_numa_bind(p, bytes, Int32(node))
            if rc != 0 { NUMA.reportPolicyFailure("bind to node \(node)", errno: rc) }
        case .preferred(let node):
            let rc = goheap_numa_prefer(p, bytes, Int32(node))
            if rc != 0 { NUMA.reportPolicyFailure("prefer node \(node)", errno: rc) }
        case .interleave:
            let rc = goheap_numa_interleave(p, bytes)
            if rc != 0 { NUMA.reportPolicyFailure("interleave", errno: rc) }
        }
    }
}

/// The machine's NUMA topology as libnuma (or, without it, the kernel) reports it.
public enum NUMA {
    /// True when libnuma was loaded and the kernel offers the NUMA API.
    public static var isAvailable: Bool { goheap_numa_load(nil, 0) }

    /// Why NUMA is not available, or nil when it is.
    public static var unavailableReason: String? {
        var buf = [CChar](repeating: 0, count: 256)
        if goheap_numa_load(&buf, buf.count) { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Number of configured nodes (1 without libnuma).
    public static var nodeCount: Int { Int(goheap_numa_node_count()) }
    /// Highest node number.
    public static var maxNode: Int { Int(goheap_numa_max_node()) }
    /// Number of configured CPUs.
    public static var cpuCount: Int { Int(goheap_cpu_count()) }

    /// Node of a CPU, or nil if the CPU does not exist.
    public static func node(ofCPU cpu: Int) -> Int? {
        let n = goheap_numa_node_of_cpu(Int32(cpu))
        return n < 0 ? nil : Int(n)
    }

    /// ACPI SLIT distance between two nodes (10 means local), or nil.
    public static func distance(from a: Int, to b: Int) -> Int? {
        let d = goheap_numa_distance(Int32(a), Int32(b))
        return d < 0 ? nil : Int(d)
    }

    /// CPUs belonging to a node.
    public static func cpus(ofNode node: Int) -> [Int] {
        var buf = [Int32](repeating: 0, count: max(cpuCount, 1))
        let n = goheap_numa_cpus_of_node(Int32(node), &buf, Int32(buf.count))
        return n < 0 ? [] : buf.prefix(Int(n)).map(Int.init)
    }

    /// Total and free memory of a node in bytes.
    public static func memory(ofNode node: Int) -> (total: Int, free: Int)? {
        var free: Int64 = 0
        let total = goheap_numa_node_size(Int32(node), &free)
        return total < 0 ? nil : (Int(total), Int(free))
    }

    /// The CPU and node the calling thread is running on right now.
    public static func currentCPU() -> (cpu: Int, node: Int)? {
        var cpu: UInt32 = 0, node: UInt32 = 0
        return goheap_getcpu(&cpu, &node) == 0 ? (Int(cpu), Int(node)) : nil
    }

    /// The node the page holding `address` lives on; nil if it is not resident
    /// (never touched, or released) or the kernel cannot tell.
    public static func node(ofAddress address: UnsafeRawPointer) -> Int? {
        let n = goheap_numa_node_of_address(UnsafeMutableRawPointer(mutating: address))
        return n < 0 ? nil : Int(n)
    }

    /// The nodes of this machine that have memory (0 alone without libnuma).
    public static var nodes: [Int] {
        guard isAvailable else { return [0] }
        let all = (0...maxNode).filter { memory(ofNode: $0) != nil }
        return all.isEmpty ? [0] : all
    }

    /// Node ranges as people write them: "0", "0-1", "0-3, 5".
    static func describe(_ nodes: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < nodes.count {
            var j = i
            while j + 1 < nodes.count && nodes[j + 1] == nodes[j] + 1 { j += 1 }
            parts.append(i == j ? "\(nodes[i])" : "\(nodes[i])-\(nodes[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }

    /// Sends the calling thread's allocations from every heap to `node`
    /// (nil: back to each heap's own policy), whatever the heap's policy:
    /// for a thread that should keep its data on one node wherever the
    /// scheduler runs it. Throws for a node this machine does not have.
    public static func setAllocationNode(_ node: Int?) throws(NUMAError) {
        if let node, !nodes.contains(node) {
            throw NUMAError(operation: "pin allocations to node \(node) (nodes \(describe(nodes)))", errno: EINVAL)
        }
        goheap_tls_set_node_override(Int32(node ?? -1))
    }

    /// The node the calling thread's allocations are pinned to, if any.
    public static var allocationNode: Int? {
        let n = goheap_tls_node_override()
        return n < 0 ? nil : Int(n)
    }

    /// Restricts the calling thread to the CPUs of `node`. Throws with errno text.
    public static func runCurrentThread(onNode node: Int) throws(NUMAError) {
        let rc = goheap_numa_run_on_node(Int32(node))
        if rc != 0 { throw NUMAError(operation: "run on node \(node)", errno: rc) }
    }

    /// Prefers `node` for the calling thread's future page allocations (nil: local).
    public static func setPreferredNode(_ node: Int?) throws(NUMAError) {
        let rc = goheap_numa_set_preferred(Int32(node ?? -1))
        if rc != 0 { throw NUMAError(operation: "prefer node \(node.map(String.init) ?? "local")", errno: rc) }
    }

    /// Binds the pages of a range to a node. The range must be page aligned.
    public static func bind(_ p: UnsafeMutableRawPointer, byteCount: Int, toNode node: Int) throws(NUMAError) {
        let rc = goheap_numa_bind(p, byteCount, Int32(node))
        if rc != 0 { throw NUMAError(operation: "bind \(byteCount) bytes at \(hex(p)) to node \(node)", errno: rc) }
    }

    /// Interleaves the pages of a range over all nodes. The range must be page aligned.
    public static func interleave(_ p: UnsafeMutableRawPointer, byteCount: Int) throws(NUMAError) {
        let rc = goheap_numa_interleave(p, byteCount)
        if rc != 0 { throw NUMAError(operation: "interleave \(byteCount) bytes at \(hex(p))", errno: rc) }
    }

    static func reportPolicyFailure(_ what: String, errno: Int32) {
        // A policy is a placement hint for the heap: failing to apply it must not
        // stop allocation, but it must not be silent either.
        let msg = "goheap: NUMA policy '\(what)' could not be applied: \(NUMAError.describe(errno))\n"
        var m = msg
        m.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// A NUMA call the kernel or libnuma refused.
public struct NUMAError: Error, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    public var description: String { "NUMA \(operation) failed: \(Self.describe(errno))" }

    static func describe(_ e: Int32) -> String {
        if e == ENOSYS { return "libnuma is not available (\(NUMA.unavailableReason ?? "unknown reason"))" }
        return String(cString: strerror(e)) + " (errno \(e))"
    }
}

#if canImport(Glibc)
import Glibc
#endif
