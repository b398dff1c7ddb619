import Testing
import Foundation
@testable import GoHeap
import CShims
import TestSupport

/// Behaviour that needs the kernel's view: THP backing, RSS, NUMA placement.
@Suite(.serialized) struct SystemTests {
    /// The helper allocates and touches an 8 MiB object and prints the smaps
    /// block of its mapping: it must be advised for huge pages (VmFlags "hg")
    /// and actually backed by them (AnonHugePages).
    @Test func hugeObjectIsBackedByTransparentHugePages() throws {
        let mode = String(cString: goheap_os_thp_mode())
        try #require(mode == "always" || mode == "madvise", "THP disabled on this kernel (\(mode))")
        let r = try FatalErrorTests.run("thp")
        let lines = r.output.split(separator: "\n")
        let huge = try #require(lines.first { $0.hasPrefix("AnonHugePages:") }, "\(r.output)")
        let kb = Int(huge.split(separator: " ")[1]) ?? 0
        #expect(kb >= 2048, "AnonHugePages of the huge object's mapping: \(kb) kB\n\(r.output)")
        let flags = try #require(lines.first { $0.hasPrefix("VmFlags:") })
        #expect(flags.split(separator: " ").contains("hg"), "mapping not advised MADV_HUGEPAGE: \(flags)")
    }

    /// Span records past the first 2 MiB of them come in 2 MiB chunks,
    /// 2 MiB aligned and advised for huge pages (a big heap's frees read one
    /// record each, in any order); the first 2 MiB stay on ordinary pages, and
    /// the metadata figure counts every chunk at its real size.
    @Test func spanRecordsOfABigHeapSitOnHugePageChunks() throws {
        let heap = makeTestHeap()
        // 6 000 one-object spans (the 8 KiB class): more records than the
        // eight small chunks hold.
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<6_000 { blocks.append(heap.allocate(byteCount: 8192)) }
        defer { for p in blocks { heap.deallocate(p) } }
        let chunks = heap.partitions[0].mheap.locked.withLock { h in h.spans.chunks.map { (UInt(bitPattern: $0.0), $0.1) } }
        let small = SpanPool.smallChunkCount
        try #require(chunks.count > small, "only \(chunks.count) record chunks for 6 000 spans")
        for (i, (addr, n)) in chunks.enumerated() {
            if i < small {
                #expect(n == SpanPool.chunkBytes, "chunk \(i) at \(hex(addr)): \(n) bytes")
            } else {
                #expect(n == SpanPool.hugeChunkBytes, "chunk \(i) at \(hex(addr)): \(n) bytes")
                #expect(addr % UInt(SpanPool.hugeChunkBytes) == 0, "chunk \(i) at \(hex(addr)) is not 2 MiB aligned")
            }
        }
        let total = chunks.reduce(0) { $0 + $1.1 }
        #expect(heap.stats.metadataSys >= total, "metadataSys \(heap.stats.metadataSys) < record chunks \(total)")
        let mode = String(cString: goheap_os_thp_mode())
        try #require(mode == "always" || mode == "madvise", "THP disabled on this kernel (\(mode))")
        let first = chunks[small].0
        let block = try #require(smapsBlock(containing: first), "no smaps entry holds \(hex(first))")
        let flags = try #require(block.first { $0.hasPrefix("VmFlags:") }, "\(block)")
        #expect(flags.split(separator: " ").contains("hg"), "record chunk \(hex(first)) not advised MADV_HUGEPAGE: \(flags)")
    }

    /// Runs in a helper process: about 1 GiB of small, large and huge objects,
    /// all touched, freed in shuffled order, then releaseFreeMemory().
    @Test func residentMemoryFallsBelowTenPercentOfPeakAfterRelease() throws {
        let r = try FatalErrorTests.run("rss-release")
        let fields = r.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        func value(_ key: String) -> Int? { fields.firstIndex(of: key).flatMap { Int(fields[$0 + 1]) } }
        let peak = try #require(value("peak"), "\(r.output)")
        let after = try #require(value("after"))
        #expect(peak > 400 << 20, "\(r.output)")
        #expect(after < peak / 10, "resident growth after release \(after >> 20) MiB vs peak \(peak >> 20) MiB: \(r.output)")
        #expect(value("heapInUse") == 0)
        #expect(value("heapReleased") == value("heapSys"))
    }

    /// Freed memory goes back to the OS without releaseFreeMemory(): the
    /// background scavenger sweeps mcentrals and releases runs that stayed free
    /// past the delay, including spans emptied by frees from another thread.
    @Test func backgroundScavengerReleasesFreedMemory() {
        let heap = makeTestHeap(HeapConfiguration(scavengePeriod: .milliseconds(20), scavengeDelay: .milliseconds(40)))
        var blocks: [UInt] = []
        for i in 0..<20_000 {
            let p = heap.allocate(byteCount: i % 10 == 0 ? 50_000 : 300)
            memset(p, 1, 300)
            blocks.append(UInt(bitPattern: p))
        }
        let frozen = blocks
        runOnThreads([{ for b in frozen { heap.deallocate(UnsafeMutableRawPointer(bitPattern: b)!) } }])
        heap.flushThreadCache()
        #expect(heap.stats.heapAlloc == 0)
        // Poll: the scavenger thread runs on its own schedule (up to 10 s here).
        var released = false
        for _ in 0..<500 where !released {
            usleep(20_000)
            let s = heap.stats
            released = s.heapInUse == 0 && s.heapReleased == s.heapSys
        }
        #expect(released, "background scavenger did not release the free heap: \(heap.stats)")
    }

    @Test func softMemoryLimitScavengesBeforeGrowing() {
        let limit = 64 << 20
        let heap = makeTestHeap(HeapConfiguration(memoryLimit: limit, backgroundScavenging: false))
        // Allocate and free 48 MiB blocks repeatedly at different sizes so the
        // free pages cannot simply be reused; retained memory must stay near the limit.
        var worst = 0
        for round in 0..<12 {
            let n = (20 << 20) + round * (1 << 20)
            let p = heap.allocate(byteCount: n)
            memset(p, 1, n)
            let q = heap.allocate(byteCount: n)
            memset(q, 1, n)
            worst = max(worst, heap.stats.heapRetained)
            heap.deallocate(p)
            heap.deallocate(q)
        }
        #expect(worst <= limit + (1 << 20), "retained \(worst >> 20) MiB with a \(limit >> 20) MiB limit")
        // Free memory the next allocations cannot reuse (huge-page arenas),
        // then 40 MiB of large objects: the limit must release the former.
        let huge = (0..<10).map { _ in heap.allocate(byteCount: 4 << 20) }
        for p in huge { memset(p, 1, 4 << 20) }
        for p in huge { heap.deallocate(p) }
        let large = (0..<40).map { _ in heap.allocate(byteCount: 1 << 20) }
        for p in large { memset(p, 1, 1 << 20) }
        let s = heap.stats
        #expect(s.heapRetained <= limit + (1 << 20), "retained \(s.heapRetained >> 20) MiB with a \(limit >> 20) MiB limit")
        #expect(s.releasedTotal >= 16 << 20, "\(s)")
        for p in large { heap.deallocate(p) }
    }

    @Test func numaTopologyMatchesNumactl() throws {
        let out = try runCommand("/usr/bin/numactl", ["--hardware"])
        // "available: 1 nodes (0)" and "node 0 cpus: 0 1"
        let nodesLine = try #require(out.split(separator: "\n").first { $0.hasPrefix("available:") })
        let nodes = Int(nodesLine.split(separator: " ")[1])!
        #expect(NUMA.nodeCount == nodes)
        for node in 0..<nodes {
            let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("node \(node) cpus:") })
            let cpus = line.split(separator: ":")[1].split(separator: " ").compactMap { Int($0) }
            #expect(NUMA.cpus(ofNode: node) == cpus)
            for c in cpus { #expect(NUMA.node(ofCPU: c) == node) }
        }
        #expect(NUMA.isAvailable, "libnuma should be installed by .ci/run: \(NUMA.unavailableReason ?? "")")
        #expect(NUMA.distance(from: 0, to: 0) == 10)
    }

    @Test func numaCallsSucceedAndHeapPagesAreOnNodeZero() throws {
        let heap = makeTestHeap(HeapConfiguration(numaPolicy: .bind(node: 0), backgroundScavenging: false))
        let p = heap.allocate(byteCount: 1 << 20)
        memset(p, 1, 1 << 20)
        #expect(NUMA.node(ofAddress: p) == 0)
        let q = heap.allocate(byteCount: 100)
        memset(q, 1, 100)
        #expect(NUMA.node(ofAddress: q) == 0)
        let cpu = try #require(NUMA.currentCPU())
        #expect(cpu.node == 0)
        try NUMA.runCurrentThread(onNode: 0)
        try NUMA.setPreferredNode(0)
        try NUMA.setPreferredNode(nil)
        try NUMA.runCurrentThread(onNode: -1)
        let inter = makeTestHeap(HeapConfiguration(numaPolicy: .interleave, backgroundScavenging: false))
        let r = inter.allocate(byteCount: 1 << 20)
        memset(r, 1, 1 << 20)
        #expect(NUMA.node(ofAddress: r) == 0)
        heap.deallocate(p)
        heap.deallocate(q)
        inter.deallocate(r)
    }
}

func runCommand(_ path: String, _ args: [String]) throws -> String {
    let proc = Process()
    proc.executableURL = URL(fileURLWithPath: path)
    proc.arguments = args
    let pipe = Pipe()
    proc.standardOutput = pipe
    proc.standardError = pipe
    try proc.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    proc.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// NUMA policies that can be checked on any machine (placement itself is
/// checked in emulated multi-node machines by scripts/numa-ci.sh).
@Suite struct NUMAPolicyTests {
    @Test func defaultPolicyIsNodeLocalWithOnePartitionPerNode() {
        let heap = makeTestHeap()
        #expect(heap.configuration.numaPolicy == .local)
        let nodes = NUMA.nodes
        #expect(heap.stats.nodes.count == (nodes.count > 1 ? nodes.count : 1))
        let p = heap.allocate(byteCount: 100)
        let big = heap.allocate(byteCount: 1 << 20)
        #expect(heap.stats.nodes.reduce(0) { $0 + $1.heapInUse } == heap.stats.heapInUse)
        heap.deallocate(p)
        heap.deallocate(big)
    }

    @Test func threadsCanPinTheirAllocationsToAnExistingNodeOnly() throws {
        let heap = makeTestHeap()
        let node = NUMA.nodes[0]
        try NUMA.setAllocationNode(node)
        #expect(NUMA.allocationNode == node)
        let p = heap.allocate(byteCount: 64)
        let q = heap.allocate(byteCount: 100_000)
        heap.deallocate(p)
        heap.deallocate(q)
        try NUMA.setAllocationNode(nil)
        #expect(NUMA.allocationNode == nil)
        #expect(throws: NUMAError.self) { try NUMA.setAllocationNode(4096) }
    }

    @Test(arguments: [NUMAPolicy.local, .firstTouch, .bind(node: 0), .preferred(node: 0), .interleave])
    func everyPolicyServesAllPaths(policy: NUMAPolicy) {
        let heap = makeTestHeap(HeapConfiguration(numaPolicy: policy, backgroundScavenging: false))
        var ps: [UnsafeMutableRawPointer] = []
        for n in [8, 500, 32768, 100_000, 3 << 20] {
            let p = heap.allocate(byteCount: n)
            memset(p, 5, n)
            ps.append(p)
        }
        for p in ps { heap.deallocate(p) }
        #expect(heap.stats.heapAlloc == 0)
        heap.releaseFreeMemory()
        #expect(heap.stats.heapInUse == 0, "\(policy): \(heap.stats.nodes)")
    }
}
